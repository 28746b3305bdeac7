"""Detectors: set-based queries that find disagreements (see base.py and registry.py)."""

from .base import ChangeSet, DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import detector_get, detectors_all, register

__all__ = [
    "ChangeSet",
    "DetectionContext",
    "Detector",
    "Finding",
    "IncidentSubject",
    "Scope",
    "detector_get",
    "detectors_all",
    "register",
]
