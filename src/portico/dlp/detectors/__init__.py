"""Built-in detectors, one small module per family; `default_detectors()` is the set the scanner uses."""

from __future__ import annotations

from portico.dlp.detectors.card import CardDetector
from portico.dlp.detectors.cloud import AwsSecretKeyDetector, AzureStorageKeyDetector, aws_access_key_id, gcp_api_key
from portico.dlp.detectors.contact import EmailDetector, PhoneDetector
from portico.dlp.detectors.custom import keyword_detector, regex_detector
from portico.dlp.detectors.iban import IbanDetector
from portico.dlp.detectors.key import JwtDetector, PrivateKeyDetector
from portico.dlp.detectors.national_id import de_idnr, fr_nir, nl_bsn
from portico.dlp.detectors.network import Ipv4Detector, Ipv6Detector
from portico.dlp.detectors.ssn import SsnDetector
from portico.dlp.detectors.token import (
    anthropic_key,
    github_token,
    gitlab_token,
    openai_key,
    slack_token,
    stripe_key,
)
from portico.dlp.model import Detector


def default_detectors() -> list[Detector]:
    """Every built-in detector, credentials first (they win ties when spans overlap)."""
    return [
        PrivateKeyDetector(),
        JwtDetector(),
        aws_access_key_id(),
        AwsSecretKeyDetector(),
        gcp_api_key(),
        AzureStorageKeyDetector(),
        github_token(),
        gitlab_token(),
        slack_token(),
        stripe_key(),
        anthropic_key(),
        openai_key(),
        CardDetector(),
        IbanDetector(),
        SsnDetector(),
        fr_nir(),
        de_idnr(),
        nl_bsn(),
        EmailDetector(),
        PhoneDetector(),
        Ipv4Detector(),
        Ipv6Detector(),
    ]


__all__ = ["default_detectors", "keyword_detector", "regex_detector"]
