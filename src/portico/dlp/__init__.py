"""Data loss prevention: find, validate and mask sensitive values (cards, IBANs, national IDs, contact details,
IP addresses, credentials, admin-defined patterns) in JSON values.

A pure engine, not yet a pipeline stage: it sits below the (future) DLP stage, which will scan tool-call
arguments and results with `Scanner.scan`, audit `Finding`s (with `fingerprint`s, never values) and apply
`redact`. `model` holds the values, `detectors/` one module per family, `scan` the JSON walk and decoding,
`redact` masking and fingerprints.

May import `portico.errors` and `python-stdnum`; nothing else from Portico.
"""

from portico.dlp.detectors import default_detectors, keyword_detector, regex_detector
from portico.dlp.model import Detector, FieldDetector, Finding
from portico.dlp.redact import fingerprint, matched_text, redact, redact_text
from portico.dlp.scan import Scanner, scan

__all__ = [
    "Detector",
    "FieldDetector",
    "Finding",
    "Scanner",
    "default_detectors",
    "fingerprint",
    "keyword_detector",
    "matched_text",
    "redact",
    "redact_text",
    "regex_detector",
    "scan",
]
