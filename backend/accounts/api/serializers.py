from rest_framework import serializers

from backend.accounts.models import COMPANY_ROLES, Company, Invitation, User, Vehicle


class CompanySerializer(serializers.ModelSerializer):
    class Meta:
        model = Company
        fields = ["id", "name", "country"]


class MeSerializer(serializers.ModelSerializer):
    company = CompanySerializer(read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "role",
            "company",
            "is_company_admin",
            "date_joined",
        ]
        read_only_fields = ["id", "email", "role", "company", "is_company_admin", "date_joined"]


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, min_length=8, max_length=128, style={"input_type": "password"})
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class VehicleSerializer(serializers.ModelSerializer):
    plate = serializers.CharField(max_length=20, help_text="Any case, spaces or dashes; stored normalised: AB12CDE.")

    class Meta:
        model = Vehicle
        fields = ["id", "plate"]


class StaffSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "first_name", "last_name", "role", "is_company_admin", "date_joined"]


class InvitationInputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=[r.value for r in COMPANY_ROLES])
    is_company_admin = serializers.BooleanField(default=False)


class InvitationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "is_company_admin", "created_at", "expires_at", "accepted_at"]


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=64)
    password = serializers.CharField(
        write_only=True, required=False, max_length=128, help_text="Needed only when no account has this e-mail yet."
    )
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class PasswordResetSerializer(serializers.Serializer):
    email = serializers.EmailField()


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = serializers.CharField(write_only=True, max_length=128)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisteredSerializer(MeSerializer):
    tokens = serializers.SerializerMethodField()

    class Meta(MeSerializer.Meta):
        fields = [*MeSerializer.Meta.fields, "tokens"]

    def get_tokens(self, user: User) -> dict[str, str]:
        from rest_framework_simplejwt.tokens import RefreshToken

        refresh = RefreshToken.for_user(user)
        return {"access": str(refresh.access_token), "refresh": str(refresh)}
