import pytest


@pytest.fixture(autouse=True)
def _storage(app, tmp_path):
    """Attachments go to a per-test folder."""
    old = app.config.get("MESSAGING_STORAGE_DIR")
    app.config["MESSAGING_STORAGE_DIR"] = str(tmp_path / "msg-files")
    yield
    app.config["MESSAGING_STORAGE_DIR"] = old
