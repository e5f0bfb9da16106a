"""Content credentials: a signed C2PA manifest in a WAV file (``c2pa-python``), saying the audio was
made by a trained algorithm (IPTC digital source type ``trainedAlgorithmicMedia``), by which generator,
in which voice, with the AI-generated label as an assertion.

Signing needs the operator's certificate chain (PEM: the signing certificate first, then its
intermediates) and private key; c2pa requires an end-entity certificate (not a CA, not self-signed) with
the digitalSignature key usage and an extended key usage such as emailProtection or documentSigning.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from gsvd.engine.checkpoints.io import atomic_write_bytes
from gsvd.engine.errors import InvalidInput
from gsvd.engine.provenance.label import AiLabel

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
LABEL_ASSERTION = "org.gsvd.ai_label"
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
_MIME = {".wav": "audio/wav", ".mp3": "audio/mpeg"}


@dataclass(frozen=True)
class SigningConfig:
    """Where the operator's signing material is (built at the edge: CLI options or config)."""

    cert_chain: Path
    private_key: Path
    algorithm: str = "es256"
    timestamp_url: str | None = None

    def load(self) -> tuple[bytes, bytes]:
        if self.algorithm not in ALGORITHMS:
            raise InvalidInput(f"signing algorithm must be one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}",
                               "sign_alg")
        out = []
        for what, path in (("certificate chain", self.cert_chain), ("private key", self.private_key)):
            try:
                out.append(Path(path).read_bytes())
            except OSError as exc:
                raise InvalidInput(f"cannot read the signing {what} {path}: {exc.strerror or exc}", "sign") from None
        return out[0], out[1]


def manifest_for(label: AiLabel, title: str) -> dict:
    return {
        "claim_generator_info": [{"name": "gsvd", "version": label.generator.split(" ")[-1]}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": label.generator},
                "description": f"synthetic speech in the voice {label.voice}",
            }]}},
            {"label": LABEL_ASSERTION, "data": label.to_dict()},
        ],
    }


def sign_file(path: str | Path, label: AiLabel, config: SigningConfig) -> Path:
    """Embed a signed manifest in ``path`` (replaced atomically). InvalidInput for a bad key/chain/format."""
    src = Path(path)
    mime = _MIME.get(src.suffix.lower())
    if mime is None:
        raise InvalidInput(f"cannot sign {src.name}: content credentials are written into .wav or .mp3 files", "out")
    atomic_write_bytes(src, sign_bytes(src.read_bytes(), mime, label, config, src.name))
    return src


def sign_bytes(data: bytes, mime: str, label: AiLabel, config: SigningConfig, title: str) -> bytes:
    """``data`` (a whole WAV or MP3 file) with a signed manifest embedded (e.g. an HTTP response's body)."""
    import c2pa

    chain, key = config.load()
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(config.algorithm, chain, key, config.timestamp_url))
        builder = c2pa.Builder.from_json(json.dumps(manifest_for(label, title)))
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise InvalidInput(f"content credentials: signing failed ({exc}); check the certificate chain and key",
                           "sign") from None
    return out.getvalue()


@dataclass(frozen=True)
class Credentials:
    """What a reader found: the active manifest and the validation verdict."""

    state: str
    """c2pa's validation state: "Invalid", "Valid" (signature good) or "Trusted" (and chain trusted)."""
    manifest: dict
    label: AiLabel | None
    problems: tuple[str, ...]
    """Validation status codes other than an untrusted signer."""


def read_credentials(path: str | Path, trust_anchors: bytes | None = None) -> Credentials | None:
    """The file's content credentials (None if it has none). ``trust_anchors``: PEM roots to trust."""
    import c2pa

    src = Path(path)
    mime = _MIME.get(src.suffix.lower(), "audio/wav")
    context = None
    if trust_anchors:
        settings = {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_anchors.decode()}}
        context = c2pa.Context(c2pa.Settings.from_json(json.dumps(settings)))
    with open(src, "rb") as stream:
        reader = c2pa.Reader.try_create(mime, stream, None, context)
        if reader is None:
            return None
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state() or ""
    manifest = store["manifests"][store["active_manifest"]]
    label = None
    for assertion in manifest.get("assertions", []):
        if assertion.get("label") == LABEL_ASSERTION:
            label = AiLabel.from_dict(assertion["data"])
    problems = tuple(s["code"] for s in store.get("validation_status", []) if s.get("code") != "signingCredential.untrusted")
    return Credentials(state, manifest, label, problems)
