"""Settings for every environment, read from environment variables.

With nothing set this is the embedded default: SQLite under ``var/``, local-memory cache,
Celery on kombu's filesystem broker, the offline payment provider. ``DJANGO_ENV=production``
switches on the hardened profile, which refuses to start without a real secret key.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
IS_PRODUCTION = DJANGO_ENV == "production"
IS_TESTING = env.bool("DJANGO_TESTING", default="pytest" in sys.modules)

_INSECURE_KEY = "django-insecure-development-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_INSECURE_KEY)
DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["127.0.0.1", "localhost", "testserver"])

if IS_PRODUCTION:
    if (
        SECRET_KEY == _INSECURE_KEY
        or SECRET_KEY.startswith("django-insecure")
        or len(set(SECRET_KEY)) < 5
        or len(SECRET_KEY) < 50
    ):
        raise ImproperlyConfigured("DJANGO_ENV=production needs SECRET_KEY: at least 50 random characters.")
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_ENV=production refuses DEBUG=true.")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ENV=production needs ALLOWED_HOSTS.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "backend.accounts",
    "backend.audit",
    "backend.carparks",
    "pricing",
    "loyalty",
    "bookings",
]

MIDDLEWARE = [
    "backend.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
WSGI_APPLICATION = "backend.wsgi.application"
ASGI_APPLICATION = "backend.asgi.application"
APPEND_SLASH = False  # API paths have no trailing slash; the other form is a 404, never a redirect.

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "backend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if "sqlite" in _db["ENGINE"]:
    # WAL and IMMEDIATE transactions let the web process and the Celery worker share the file
    # without "database is locked" under ordinary load.
    _db["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    _db.setdefault("OPTIONS", {})
    _db["CONN_HEALTH_CHECKS"] = True
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # Server-side parameters, and each statement prepared on a connection after its second
        # use: PostgreSQL then plans the hot queries (holds, quotes, search) once per connection.
        # Turn off behind a transaction-mode pooler (PgBouncer) that cannot keep them.
        _db["OPTIONS"].setdefault("server_side_binding", True)
        _db["OPTIONS"].setdefault("prepare_threshold", 2)
    if env.bool("DATABASE_POOL", default=False):
        _db["OPTIONS"]["pool"] = {"min_size": 2, "max_size": env.int("DATABASE_POOL_MAX", default=10)}
    else:
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# Every test run gets its own database, so parallel runs on one server never collide.
_test_db_name = f"test_parking_{os.getpid()}"
if _db["ENGINE"].endswith("sqlite3"):  # a file under var/, not in the working directory
    _test_db_name = str(VAR_DIR / f"{_test_db_name}.sqlite3")
_db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=_test_db_name)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="parking")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "parking"}}

CELERY_BROKER_URL = REDIS_URL or "filesystem://"
_broker_dir = VAR_DIR / "celery-broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {"visibility_timeout": 3600}
    if REDIS_URL
    else {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
)
if not REDIS_URL:
    _broker_dir.mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=IS_TESTING)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "platform-heartbeat": {
        "task": "backend.core.tasks.heartbeat",
        "schedule": timedelta(seconds=env.int("CELERY_HEARTBEAT_SECONDS", default=60)),
    },
}

# --- Auth -------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if IS_TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/admin/login/"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24
FRONTEND_PASSWORD_RESET_URL = env.str(
    "FRONTEND_PASSWORD_RESET_URL", default="http://127.0.0.1:8000/accounts/reset/{uid}/{token}/"
)
FRONTEND_INVITATION_URL = env.str(
    "FRONTEND_INVITATION_URL", default="http://127.0.0.1:8000/api/v1/auth/invitations/accept?token={token}"
)

# --- Internationalisation and time -------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- E-mail -----------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
if IS_PRODUCTION and "EMAIL_URL" in os.environ:
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Parking <no-reply@parking.example>")

# --- Payments ---------------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")  # loopback stub in tests; empty means Stripe itself
PAYMENT_PROVIDER = env.str("PAYMENT_PROVIDER", default="stripe" if STRIPE_SECRET_KEY else "offline")

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["backend.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # `?format=` is not a content switch here (DRF answered 404 to ?format=xml); Accept negotiates.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "backend.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "backend.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "backend.api.errors.problem_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="10000/hour" if IS_TESTING else "120/minute"),
        "user": env.str("THROTTLE_USER", default="100000/hour" if IS_TESTING else "1200/minute"),
        "auth": env.str("THROTTLE_AUTH", default="10000/hour" if IS_TESTING else "20/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=14)),
    "ROTATE_REFRESH_TOKENS": False,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Parking platform API",
    "DESCRIPTION": (
        "Find car parks, quote, book and pay; operators manage inventory and rates. "
        "Every error is application/problem+json (RFC 9457) with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "UserRoleEnum": "backend.accounts.models.Role",
        "InvitationRoleEnum": ["operator", "marketing"],
        "GateEventKindEnum": "bookings.models.GateEventKind",
    },
}

# --- Security (production profile) ------------------------------------------------------
if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Logging: a request id on every line -------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "backend.core.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}

# --- Domain defaults ----------------------------------------------------------------------
SEARCH_MAX_RADIUS_KM = 50
CSRF_FAILURE_VIEW = "backend.api.errors.csrf_failure_view"
PRICING_DEFAULT_RATE_CARD = {
    "hourly_rate": "2.50",
    "daily_maximum": "20.00",
    "minimum_charge": "1.00",
    "tax_rate": "0.20",
}

# --- Bookings -----------------------------------------------------------------------------
BOOKING_HOLD_MINUTES = env.int("BOOKING_HOLD_MINUTES", default=10)
BOOKING_MAX_UNPAID_HOLDS = env.int("BOOKING_MAX_UNPAID_HOLDS", default=3)
BOOKING_MAX_STAY_DAYS = env.int("BOOKING_MAX_STAY_DAYS", default=30)
BOOKING_MAX_ADVANCE_DAYS = env.int("BOOKING_MAX_ADVANCE_DAYS", default=365)
BOOKING_SLOT_MINUTES = 15
IDEMPOTENCY_WAIT_SECONDS = env.float("IDEMPOTENCY_WAIT_SECONDS", default=5.0)
BOOKING_REMINDER_HOURS = env.int("BOOKING_REMINDER_HOURS", default=2)
BOOKING_RECEIPT_BRAND = env.str("BOOKING_RECEIPT_BRAND", default="Parking")
# Sweeps, never one delayed task per hold: a lost task must not keep a bay held forever.
CELERY_BEAT_SCHEDULE.update(
    {
        "bookings-expire-holds": {"task": "bookings.tasks.expire_holds", "schedule": timedelta(minutes=1)},
        "bookings-mark-no-shows": {"task": "bookings.tasks.mark_no_shows", "schedule": timedelta(minutes=5)},
        "bookings-resend-unsent-refunds": {
            "task": "bookings.tasks.resend_unsent_refunds",
            "schedule": timedelta(minutes=10),
        },
        "bookings-send-reminders": {"task": "bookings.tasks.send_reminders", "schedule": timedelta(minutes=5)},
        "bookings-publish-gate-occupancy": {
            "task": "bookings.tasks.publish_gate_occupancy",
            "schedule": timedelta(minutes=15),
        },
        "bookings-purge-idempotency": {
            "task": "bookings.tasks.purge_idempotency_records",
            "schedule": timedelta(hours=6),
        },
        "bookings-retry-overstay-payments": {
            "task": "bookings.tasks.retry_overstay_payments",
            "schedule": timedelta(minutes=5),
            # django-celery-beat's name for expires: a run still queued 4 minutes on is dropped.
            "options": {"expire_seconds": 4 * 60},
        },
        "bookings-infer-unreported-exits": {
            "task": "bookings.tasks.infer_unreported_exits",
            "schedule": timedelta(minutes=30),
        },
    }
)
IDEMPOTENCY_RETENTION_HOURS = env.int("IDEMPOTENCY_RETENTION_HOURS", default=24)

# --- Pricing: rate policy -------------------------------------------------------------------
# Price elasticity of occupancy when history cannot estimate one and the operator set none:
# parking studies report about -0.4 (a 10% higher rate loses about 4% of occupancy).
PRICING_DEFAULT_ELASTICITY = env.float("PRICING_DEFAULT_ELASTICITY", default=-0.4)
PRICING_DEFAULT_BAND = (0.70, 0.85)
PRICING_PUBLISH_DAYS = env.int("PRICING_PUBLISH_DAYS", default=7)
CELERY_BEAT_SCHEDULE.update(
    {
        "pricing-publish-rates": {"task": "pricing.tasks.publish_rates_task", "schedule": timedelta(hours=1)},
        "pricing-estimate-elasticities": {
            "task": "pricing.tasks.estimate_elasticities_task",
            "schedule": timedelta(days=1),
        },
    }
)

# --- Pricing: demand model ------------------------------------------------------------------
# Nightly retraining, after the day's occupancy has been handed over; promoted only if it beats
# the seasonal-naive baseline on the last PRICING_TRAIN_HOLDOUT_WEEKS weeks.
from celery.schedules import crontab  # noqa: E402

PRICING_TRAIN_HOLDOUT_WEEKS = env.int("PRICING_TRAIN_HOLDOUT_WEEKS", default=2)
CELERY_BEAT_SCHEDULE["pricing-train-demand-model"] = {
    "task": "pricing.tasks.train_demand_model",
    "schedule": crontab(hour=2, minute=30),
    "kwargs": {"holdout_weeks": PRICING_TRAIN_HOLDOUT_WEEKS},
}

# --- Gate -----------------------------------------------------------------------------------
# Minutes after a booking's end that an exit is still free; later, the whole overstay is charged.
BOOKING_EXIT_GRACE_MINUTES = env.int("BOOKING_EXIT_GRACE_MINUTES", default=10)
# Hours after a checked-in booking's end without an exit before its car stops counting as inside.
BOOKING_UNREPORTED_EXIT_HOURS = env.int("BOOKING_UNREPORTED_EXIT_HOURS", default=24)
