"""Money: ``Decimal`` amounts with an ISO 4217 currency; rounding and minor units live here only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor-unit exponents for the currencies we accept. A currency not listed here is
# refused at the edge rather than guessed.
MINOR_UNITS: dict[str, int] = {
    "AED": 2, "AUD": 2, "BGN": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2,
    "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0,
    "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "PHP": 2, "PLN": 2,
    "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TRY": 2, "TWD": 2, "USD": 2, "ZAR": 2,
}  # fmt: skip

CURRENCY_CHOICES = [(code, code) for code in sorted(MINOR_UNITS)]


def is_known_currency(code: str) -> bool:
    return code in MINOR_UNITS


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency``; raises ``KeyError`` for unknown codes."""
    return MINOR_UNITS[currency]


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Arithmetic refuses to mix currencies."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal, never a float")
        if self.currency not in MINOR_UNITS:
            raise ValueError(f"unknown currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(Decimal(minor).scaleb(-minor_unit_exponent(currency)), currency)

    def to_minor(self) -> int:
        """Integer minor units (pence, cents), rounded half up at the currency's precision."""
        return int(self.rounded().amount.scaleb(minor_unit_exponent(self.currency)))

    def rounded(self) -> Money:
        quantum = Decimal(1).scaleb(-minor_unit_exponent(self.currency))
        return Money(self.amount.quantize(quantum, rounding=ROUND_HALF_UP), self.currency)

    def tax_included(self, rate: Decimal) -> Money:
        """The tax inside this tax-inclusive amount: ``amount * rate / (1 + rate)``, half up to minor
        units. Quotes, bookings and receipts all use it, so each shows the tax the quote said."""
        return Money(self.amount * rate / (1 + rate), self.currency).rounded()

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def __str__(self) -> str:
        return f"{self.rounded().amount} {self.currency}"
