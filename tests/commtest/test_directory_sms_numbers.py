"""An sms endpoint must be able to receive SMS: a fixed line is refused at import."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from commtest.directory import import_directory
from commtest.errors import ValidationFailed

from .test_directory_support import BASE_YAML, counts, write

MOBILE = "{kind: sms, address: '+32 470 55 01 10',"


def test_an_sms_endpoint_on_a_landline_is_refused_with_the_reason_at_its_line(engine: Engine, tmp_path: Path) -> None:
    assert MOBILE in BASE_YAML
    path = write(tmp_path, BASE_YAML.replace(MOBILE, "{kind: sms, address: '+32 2 555 01 20',"))
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:18: address: +3225550120 is a fixed line (landline), which cannot receive SMS; give a mobile "
        "number for this sms endpoint, or make it a voice endpoint"
    ]
    assert set(counts(engine).values()) == {0}  # nothing written


def test_the_same_landline_is_fine_as_a_voice_endpoint_and_a_mobile_as_sms(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML.replace(MOBILE, "{kind: voice, address: '+32 2 555 01 20',")))
    import_directory(engine, write(tmp_path, BASE_YAML, "again.yaml"), replace=True)
