"""The receipt downloader and the content sniffer, in isolation (``responses`` fakes the file host).

The lifecycle end to end, over real HTTP, is in ``test_receipts_lifecycle.py``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import timedelta

import pytest
import requests
import responses

from exports import clock
from exports.receipts import sniff
from exports.receipts.fetch import (
    FetchConfig,
    FileRef,
    OutOfTime,
    ReceiptFailure,
    file_refs,
    new_session,
    receipt_fetch,
    receipts_fetch_many,
    shown_url,
)
from exports.receipts.files import receipts_storage

HOST = "https://files.pleo.test"
SIGNED = "X-Amz-Signature=abc123secret&X-Amz-Expires=86400"
PDF = b"%PDF-1.7\n" + b"x" * 5000 + b"\n%%EOF\n"


def config(**overrides) -> FetchConfig:
    values = dict(
        max_bytes=10_000,
        accepted=sniff.accepted_kinds(["pdf", "jpg", "png", "doc", "docx", "xls", "xlsx", "txt"]),
        allowed_hosts=frozenset(),
        allow_loopback=False,
        connect_timeout=1,
        read_timeout=1,
        max_attempts=3,
        backoff_base=0.01,
        backoff_max=1,
        concurrency=2,
    )
    values.update(overrides)
    return FetchConfig(**values)


def ref(path="/r/1.pdf", *, declared_type="application/pdf", size=len(PDF), host=HOST):
    return FileRef(
        position=0, url=f"{host}{path}?{SIGNED}", declared_type=declared_type, declared_size=size
    )


def fetch(file_ref, cfg=None, **kw):
    sleeps = kw.pop("sleeps", [])
    return receipt_fetch(
        ref=file_ref,
        company_pk=7,
        config=cfg or config(),
        session=new_session(),
        sleep=sleeps.append,
        **kw,
    )


# --- the sniffer ------------------------------------------------------------------------------


def ooxml(part: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(part, "<x/>")
    return buffer.getvalue()


OLE = sniff.OLE2_MAGIC + b"\x00" * 504


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (PDF, "pdf"),
        (b"\xff\xd8\xff\xe0JFIF" + b"\x00" * 20, "jpeg"),
        (sniff.PNG_MAGIC + b"\x00" * 20, "png"),
        (ooxml("word/document.xml"), "docx"),
        (ooxml("xl/workbook.xml"), "xlsx"),
        (ooxml("other/part.xml"), None),
        (b"PK\x03\x04 not really a zip", None),
        (OLE + "WordDocument".encode("utf-16-le") + b"\x00" * 70_000, "doc"),
        (OLE + b"\x00" * 70_000 + "Workbook".encode("utf-16-le"), "xls"),
        (OLE + b"\x00" * 100, None),
        ("Taxi 12,50 € — kvittering\n".encode() * 3000, "txt"),
        (b"text with a NUL\x00", None),
        (b"caf\xe9 is latin-1", None),
        ("ends mid-character é".encode()[:-1], None),
        (b"", None),
    ],
)
def test_the_sniffer_judges_by_content(tmp_path, content, kind):
    sniffer = sniff.Sniffer()
    for start in range(0, len(content), 4096):  # fed in chunks, as a download is
        sniffer.feed(content[start : start + 4096])
    path = tmp_path / "file"
    path.write_bytes(content)
    assert sniffer.verdict(path) == (sniff.Kind(kind) if kind else None)


def test_declared_types_and_setting_names_read_to_kinds():
    assert sniff.kind_of("image/jpg") == sniff.kind_of("JPG") == sniff.Kind.JPEG
    assert sniff.kind_of("application/pdf; charset=binary") == sniff.Kind.PDF
    assert sniff.kind_of("application/zip") is None
    assert sniff.accepted_kinds(["pdf", "exe", "jpg"]) == {sniff.Kind.PDF, sniff.Kind.JPEG}


# --- one file -----------------------------------------------------------------------------------


def test_file_refs_read_files_generously_and_show_no_query():
    refs = file_refs(
        {"files": [{"url": f"{HOST}/a.pdf?{SIGNED}", "type": "application/pdf", "size": 3}, "x"]}
    )
    assert [(r.position, r.declared_size, bool(r.url)) for r in refs] == [
        (0, 3, True),
        (1, None, False),
    ]
    assert refs[0].where == "file 1 (files.pleo.test/a.pdf)"
    assert shown_url(f"https://user:pw@h.test:8443/p?{SIGNED}") == "h.test:8443/p"
    assert file_refs({"files": None}) == [] == file_refs({})


@responses.activate
def test_a_file_is_streamed_hashed_and_stored_under_its_content_address(receipts_archive):
    responses.get(f"{HOST}/r/1.pdf", body=PDF, content_type="application/pdf")
    fetched = fetch(ref())
    digest = hashlib.sha256(PDF).hexdigest()
    assert (fetched.kind, fetched.size, fetched.sha256) == ("pdf", len(PDF), digest)
    assert fetched.storage_name == f"7/{digest}"
    assert (receipts_archive / "7" / digest).read_bytes() == PDF
    sent = responses.calls[0].request
    assert sent.url.endswith(SIGNED)  # the signature is what authorises the download
    assert {name.lower() for name in sent.headers} <= {
        "user-agent",
        "accept",
        "accept-encoding",
        "connection",
    }
    assert "authorization" not in {name.lower() for name in sent.headers}


@responses.activate
def test_no_netrc_credential_is_added(receipts_archive, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine files.pleo.test login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    responses.get(f"{HOST}/r/1.pdf", body=PDF)
    fetch(ref())
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_5xx_is_retried_with_backoff_honouring_retry_after(receipts_archive):
    responses.get(f"{HOST}/r/1.pdf", status=503, headers={"Retry-After": "2"})
    responses.get(f"{HOST}/r/1.pdf", status=502)
    responses.get(f"{HOST}/r/1.pdf", body=PDF)
    sleeps = []
    assert fetch(ref(), sleeps=sleeps).size == len(PDF)
    assert sleeps == [2.0, 0.02]


@responses.activate
def test_the_last_failure_is_reported_after_the_attempts(receipts_archive):
    responses.get(f"{HOST}/r/1.pdf", body=requests.ConnectTimeout())
    with pytest.raises(ReceiptFailure) as caught:
        fetch(ref())
    assert caught.value.failure_type == "receipt_download_failure"
    assert "after 3 attempts" in caught.value.message
    assert "files.pleo.test/r/1.pdf" in caught.value.message
    assert SIGNED not in caught.value.message
    assert len(responses.calls) == 3


@pytest.mark.parametrize(
    ("url", "cfg", "said"),
    [
        (f"http://files.pleo.test/r.pdf?{SIGNED}", {}, "not https"),
        (f"http://127.0.0.1:9/r.pdf?{SIGNED}", {}, "not https"),
        (f"https://127.0.0.1:9/r.pdf?{SIGNED}", {}, "loopback"),
        (f"https://evil.test/r.pdf?{SIGNED}", {"allowed_hosts": {"files.pleo.test"}}, "not in"),
        (f"https://u:p@files.pleo.test/r.pdf?{SIGNED}", {}, "user or password"),
    ],
)
@responses.activate
def test_urls_not_allowed_are_never_requested(url, cfg, said):
    file_ref = FileRef(position=0, url=url, declared_type="application/pdf", declared_size=None)
    with pytest.raises(ReceiptFailure) as caught:
        fetch(file_ref, config(**cfg))
    assert said in caught.value.message and SIGNED not in caught.value.message
    assert caught.value.failure_type == "receipt_download_failure"
    assert len(responses.calls) == 0


@responses.activate
def test_redirects_are_followed_by_hand_to_https_only(receipts_archive):
    responses.get(f"{HOST}/r/1.pdf", status=302, headers={"Location": "/r/2.pdf?sig=2"})
    responses.get(f"{HOST}/r/2.pdf", status=307, headers={"Location": "https://cdn.pleo.test/3"})
    responses.get("https://cdn.pleo.test/3", body=PDF)
    assert fetch(ref()).size == len(PDF)
    responses.get(f"{HOST}/r/4.pdf", status=302, headers={"Location": "http://cdn.pleo.test/4"})
    with pytest.raises(ReceiptFailure, match="not https"):
        fetch(ref("/r/4.pdf"))


@pytest.mark.parametrize(
    ("declared", "headers", "body", "said"),
    [
        (20_000, {}, PDF, "declared as 20000 bytes"),
        (None, {"Content-Length": "50000"}, None, "50000 bytes (Content-Length)"),
        (None, {}, b"%PDF-" + b"x" * 20_000, "reading stopped at the limit"),
    ],
)
@responses.activate
def test_a_file_over_the_limit_fails_its_item(receipts_archive, declared, headers, body, said):
    if body is None:
        responses.get(
            f"{HOST}/r/1.pdf", body=PDF, headers=headers, auto_calculate_content_length=False
        )
    else:
        responses.get(f"{HOST}/r/1.pdf", body=body)
    with pytest.raises(ReceiptFailure) as caught:
        fetch(ref(size=declared))
    assert caught.value.failure_type == "receipt_file_size_limit_exceeded"
    assert said in caught.value.message
    assert not any(receipts_archive.rglob("*")) or not list((receipts_archive / "7").iterdir())


@responses.activate
def test_type_and_size_are_checked_against_what_pleo_declared(receipts_archive):
    png = sniff.PNG_MAGIC + b"\x00" * 100
    responses.get(f"{HOST}/r/1.pdf", body=png)
    fetched = fetch(ref(declared_type="image/jpeg", size=len(png)))
    assert fetched.content_type == "image/png"
    assert "declared as 'image/jpeg' but its content is png" in fetched.type_note
    responses.get(f"{HOST}/r/2.pdf", body=b"MZ\x90\x00 an executable")
    with pytest.raises(ReceiptFailure) as caught:
        fetch(ref("/r/2.pdf", size=None))
    assert caught.value.failure_type == "receipt_conversion_failure"
    responses.get(f"{HOST}/r/3.pdf", body=PDF)
    with pytest.raises(ReceiptFailure, match="Pleo declared 10 bytes"):
        fetch(ref("/r/3.pdf", size=10))
    with pytest.raises(ReceiptFailure, match="png, not accepted"):
        fetch(ref(declared_type="image/png", size=len(png)), config(accepted={sniff.Kind.PDF}))


@responses.activate
def test_many_files_share_the_threads_and_one_content_address(receipts_archive):
    for n in range(6):
        responses.get(f"{HOST}/r/{n}.pdf", body=PDF)
    refs = [(n, ref(f"/r/{n}.pdf")) for n in range(6)]
    outcomes = receipts_fetch_many(refs, company_pk=7, config=config())
    assert {o.sha256 for o in outcomes.values()} == {hashlib.sha256(PDF).hexdigest()}
    assert receipts_storage().listdir("7")[1] == [hashlib.sha256(PDF).hexdigest()]
    late = receipts_fetch_many(
        refs[:1], company_pk=7, config=config(), deadline=clock.now() - timedelta(seconds=1)
    )
    assert isinstance(late[0], OutOfTime)
