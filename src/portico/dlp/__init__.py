"""Data loss prevention: find, validate and mask sensitive values (cards, IBANs, national IDs, contact details,
IP addresses, credentials, admin-defined patterns) in JSON values.

The engine is pure: `model` holds the values, `detectors/` one module per family, `scan` the JSON walk and
decoding, `redact` masking and fingerprints; it may import `portico.errors`, `python-stdnum` and `google-re2`
(as `re2`), nothing else from Portico. On top of it, `settings` (the `dlp:` section), `rules` (rules compiled per
destination) and `stage` (`DlpStage`, which scans arguments and results, audits `Finding`s by fingerprint, never
by value, and blocks or redacts) are the pipeline's DLP.
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
