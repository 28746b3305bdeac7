"""Inventory's error types; each carries a stable code for the API envelope."""

from core.errors import ConcordError


class UnknownSku(ConcordError):
    code = "unknown_sku"
    http_status = 400


class OutOfStock(ConcordError):
    code = "out_of_stock"
    http_status = 409
