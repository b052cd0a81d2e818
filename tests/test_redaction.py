"""The one redactor (``exports.redaction``): every form of a secret, the longest first, short
values left alone."""

from exports.redaction import HIDDEN, MIN_SCRUBBED_LENGTH, without_secrets


def test_each_form_of_a_secret_is_hidden_and_a_short_value_is_not():
    secret = "s3cret/with+signs&more"
    text = f"raw {secret} quote s3cret%2Fwith%2Bsigns%26more plus s3cret%2Fwith%2Bsigns%26more"
    assert without_secrets(text, [secret]) == f"raw {HIDDEN} quote {HIDDEN} plus {HIDDEN}"
    short = "x" * (MIN_SCRUBBED_LENGTH - 1)
    assert without_secrets(f"a {short} b", [short]) == f"a {short} b"


def test_a_secret_containing_another_is_hidden_whole_and_html_escapes_on_request():
    inner, outer = "inner-secret-1", "outer<inner-secret-1>tail"
    assert without_secrets(f"[{outer}]", [inner, outer], substitute="*") == "[*]"
    escaped = "outer&lt;inner-secret-1&gt;tail"
    assert without_secrets(escaped, [outer], substitute="*") != "*"
    assert without_secrets(escaped, [outer], substitute="*", html=True) == "*"
