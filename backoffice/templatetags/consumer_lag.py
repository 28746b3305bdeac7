"""{% consumer_lag_panel %}: every outbox consumer's lag, for the overview (so the
overview's view and its other panels stay as they are); kept a few seconds
(backoffice.probes)."""

from __future__ import annotations

from django import template

from backoffice.probes import consumers_lag

register = template.Library()


@register.inclusion_tag("backoffice/_consumer_lag.html")
def consumer_lag_panel() -> dict:
    return {"lags": consumers_lag()}
