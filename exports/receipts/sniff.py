"""What a receipt file is, judged by its content (magic numbers), never by what Pleo declares.

Fed chunk by chunk while the file streams in (:class:`Sniffer`), then judged once the whole file
is on disk (:meth:`Sniffer.verdict`):

* ``pdf`` ``%PDF-``; ``jpeg`` ``FF D8 FF``; ``png`` the 8-byte PNG signature;
* ``docx`` / ``xlsx``: a zip (``PK\\x03\\x04``) holding ``[Content_Types].xml`` and the OOXML
  part ``word/document.xml`` / ``xl/workbook.xml`` (read from the zip's central directory);
* ``doc`` / ``xls``: an OLE2 compound file (``D0 CF 11 E0 A1 B1 1A E1``) with a ``WordDocument``
  / ``Workbook`` (or ``Book``) stream, its directory names found by scanning the file;
* ``txt``: valid UTF-8 without a NUL byte (checked over the whole file, incrementally).

Pleo's declared ``type`` (a MIME type such as ``application/pdf``, or a name such as ``pdf``) is
read to a kind by :func:`declared_kind`. Imports nothing from Django.
"""

from __future__ import annotations

import codecs
import enum
import zipfile
from pathlib import Path


class Kind(enum.StrEnum):
    PDF = "pdf"
    JPEG = "jpeg"
    PNG = "png"
    DOC = "doc"
    DOCX = "docx"
    XLS = "xls"
    XLSX = "xlsx"
    TXT = "txt"


MIME_TYPES = {
    Kind.PDF: "application/pdf",
    Kind.JPEG: "image/jpeg",
    Kind.PNG: "image/png",
    Kind.DOC: "application/msword",
    Kind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    Kind.XLS: "application/vnd.ms-excel",
    Kind.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Kind.TXT: "text/plain",
}
# Names a setting or a declared type may use for a kind.
ALIASES = {"jpg": Kind.JPEG, "text": Kind.TXT, "image/jpg": Kind.JPEG, "image/pjpeg": Kind.JPEG}

PDF_MAGIC = b"%PDF-"
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HEAD_BYTES = 64
BINARY_MAGICS = (PDF_MAGIC, JPEG_MAGIC, PNG_MAGIC, ZIP_MAGIC, OLE2_MAGIC)
_OLE_NAMES = {
    Kind.DOC: ("WordDocument".encode("utf-16-le"),),
    Kind.XLS: ("Workbook".encode("utf-16-le"), "Book\x00".encode("utf-16-le")),
}
_SCAN_CHUNK = 1 << 16


def kind_of(name: str) -> Kind | None:
    """A kind from a setting's or Pleo's word for it (``pdf``, ``jpg``, ``image/png``…)."""
    value = (name or "").strip().lower().split(";")[0].strip()
    if value in ALIASES:
        return ALIASES[value]
    try:
        return Kind(value)
    except ValueError:
        pass
    for kind, mime in MIME_TYPES.items():
        if value == mime:
            return kind
    return None


def accepted_kinds(names: list[str]) -> frozenset[Kind]:
    return frozenset(kind for kind in map(kind_of, names) if kind is not None)


class Sniffer:
    """Fed every chunk of one file in order; keeps its first bytes and whether it is UTF-8 text."""

    def __init__(self) -> None:
        self.head = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text_ok = True

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
            if self.head.startswith(BINARY_MAGICS):
                self.text_ok = False  # a known binary type: no need to read it as text
        if self.text_ok:
            if b"\x00" in chunk:
                self.text_ok = False
                return
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError:
                self.text_ok = False

    def _text_complete(self) -> bool:
        if not self.text_ok:
            return False
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
        return True

    def verdict(self, path: Path) -> Kind | None:
        """The kind of the whole file at ``path`` (fed in full), or None when it is none of
        them. An empty file is none."""
        head = self.head
        if not head:
            return None
        if head.startswith(PDF_MAGIC):
            return Kind.PDF
        if head.startswith(JPEG_MAGIC):
            return Kind.JPEG
        if head.startswith(PNG_MAGIC):
            return Kind.PNG
        if head.startswith(ZIP_MAGIC):
            return _ooxml_kind(path)
        if head.startswith(OLE2_MAGIC):
            return _ole2_kind(path)
        if self._text_complete():
            return Kind.TXT
        return None


def _ooxml_kind(path: Path) -> Kind | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if "word/document.xml" in names:
        return Kind.DOCX
    if "xl/workbook.xml" in names:
        return Kind.XLSX
    return None


def _ole2_kind(path: Path) -> Kind | None:
    """Scan the compound file for a directory entry name (UTF-16LE), chunk by chunk."""
    needles = [(kind, name) for kind, names in _OLE_NAMES.items() for name in names]
    keep = max(len(name) for _, name in needles)
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            window = tail + chunk
            for kind, name in needles:
                if name in window:
                    return kind
            tail = window[-keep:]
    return None
