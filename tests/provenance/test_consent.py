"""Consent records: what `gsvd train` stores for its --consent, what a remote upload must carry, and that
text from a remote caller is never read as a file path."""

from __future__ import annotations

import json

import pytest

from gsvd.engine.consent import check_record, parse_consent, summary, train_record, upload_record
from gsvd.engine.errors import InvalidInput

FULL = "speaker=Alice Example; use=audiobook narration; date=2026-11-01; by=Bob (studio)"


def test_train_record_keeps_the_four_fields_when_given_and_the_statement_otherwise(tmp_path):
    structured = train_record(FULL, recorded_by="ops")
    assert structured["speaker"] == "Alice Example" and structured["recorded_by"] == "Bob (studio)"
    assert structured["source"] == "gsvd train --consent" and structured["recorded_at"]
    assert check_record(structured)["use"] == "audiobook narration"
    prose = train_record("Alice agreed on 2026-11-20 to a cloned voice for her stream", recorded_by="ops")
    assert prose["statement"].startswith("Alice agreed") and prose["recorded_by"] == "ops" and prose["recorded_at"]
    assert "speaker" not in prose and check_record(prose) == prose
    with pytest.raises(InvalidInput, match="lacks 'date'"):  # the four-field form, incomplete: said before training
        train_record("speaker=Alice; use=stream; by=Bob", recorded_by="ops")
    with pytest.raises(InvalidInput, match="consent record is required"):
        train_record("  ", recorded_by="ops")
    file = tmp_path / "consent.json"
    file.write_text(json.dumps({"who": "Carol", "use": "games", "when": "2026-02-03", "by": "Dan"}), encoding="utf-8")
    assert train_record(str(file), recorded_by="ops")["speaker"] == "Carol"


def test_remote_text_is_never_read_as_a_file(tmp_path):
    file = tmp_path / "consent.toml"
    file.write_text('speaker = "Carol"\nuse = "games"\ndate = "2026-02-03"\nrecorded_by = "Dan"\n', encoding="utf-8")
    assert parse_consent(str(file)).speaker == "Carol"  # the local CLI may name a file
    with pytest.raises(InvalidInput, match="cannot read consent part"):
        parse_consent(str(file), files=False)


def test_upload_record_names_what_is_missing():
    record = upload_record({"speaker": "A", "use": "b", "date": "2026-01-01", "recorded_by": "c", "statement": ""},
                           "zero-shot upload (test)")
    assert record["source"] == "zero-shot upload (test)" and "statement" not in record
    with pytest.raises(InvalidInput, match="missing: use, recorded_by") as info:
        upload_record({"speaker": "A", "date": "2026-01-01"}, "x", "reference.consent")
    assert info.value.field == "reference.consent"
    with pytest.raises(InvalidInput, match="ISO date") as info:
        upload_record({"speaker": "A", "use": "b", "date": "yesterday", "recorded_by": "c"}, "x")
    assert info.value.field == "consent"
    assert summary(record) == "A (b, 2026-01-01, recorded by c)"
    assert summary({"statement": "x" * 100}).endswith("...") and summary(None) == ""
