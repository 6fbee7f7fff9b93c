"""Payment providers (Stripe and offline) behind one small interface.

Importing this package pulls in no Django code. ``StripeProvider`` and the webhook helpers import the
``stripe`` library; the rest only needs the standard library.
"""

from .offline_provider import OfflineProvider, UnsupportedTestPaymentMethod
from .providers import (
    PAYMENT_CANCELED,
    PAYMENT_PROCESSING,
    PAYMENT_REQUIRES_ACTION,
    PAYMENT_REQUIRES_CAPTURE,
    PAYMENT_REQUIRES_CONFIRMATION,
    PAYMENT_REQUIRES_PAYMENT_METHOD,
    PAYMENT_SUCCEEDED,
    REFUND_REASONS,
    IdempotencyConflict,
    InvalidPaymentRequest,
    PaymentConfigurationError,
    PaymentDeclined,
    PaymentGatewayError,
    PaymentProvider,
    PaymentProviderError,
    ProviderPayment,
    ProviderRefund,
)
from .stripe_provider import StripeProvider
from .webhooks import InvalidWebhook, parse_stripe_event, sign_stripe_payload

__all__ = [
    "PAYMENT_CANCELED",
    "PAYMENT_PROCESSING",
    "PAYMENT_REQUIRES_ACTION",
    "PAYMENT_REQUIRES_CAPTURE",
    "PAYMENT_REQUIRES_CONFIRMATION",
    "PAYMENT_REQUIRES_PAYMENT_METHOD",
    "PAYMENT_SUCCEEDED",
    "REFUND_REASONS",
    "IdempotencyConflict",
    "InvalidPaymentRequest",
    "InvalidWebhook",
    "OfflineProvider",
    "PaymentConfigurationError",
    "PaymentDeclined",
    "PaymentGatewayError",
    "PaymentProvider",
    "PaymentProviderError",
    "ProviderPayment",
    "ProviderRefund",
    "StripeProvider",
    "UnsupportedTestPaymentMethod",
    "parse_stripe_event",
    "sign_stripe_payload",
]
