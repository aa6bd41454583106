"""The SDK carries a copy of the WIT contract so that a plugin folder builds on its own."""

from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
REPOSITORY = SDK.parents[1]


def test_the_sdks_wit_is_the_repositorys():
    copy = (SDK / "runnel" / "wit" / "runnel.wit").read_text()
    assert copy == (REPOSITORY / "wit" / "runnel.wit").read_text(), (
        "copy wit/runnel.wit to sdk/python/runnel/wit/"
    )
