"""The accounting adapter contract (exports.adapters.base) and its registry, without a database:
the defaults every adapter inherits (precheck passes, book_batch books one by one, lookup
unsupported, no attachments), the result values, receipts and attachment limits, selectability."""

from __future__ import annotations

import dataclasses
import io
import uuid

import pytest

from exports.adapters import (
    ADAPTERS,
    PLEO_ATTACHMENT_LIMITS,
    AccountingAdapter,
    AttachmentLimit,
    AttachmentLimits,
    BookingRequest,
    BookingResult,
    ItemCheck,
    JournalAdapter,
    LookupUnsupported,
    ReceiptFile,
    ValidationResult,
    adapter_choices,
    get_adapter,
    register_adapter,
)
from exports.pleo import ItemFailureReasonType, JobFailureReasonType

MB = 2**20


class Recording(AccountingAdapter):
    """Books everything except items whose accounting entry id is in ``refuse``."""

    name = "recording"
    label = "Recording ERP"
    refuse: frozenset[str] = frozenset()

    def __init__(self, **kw):
        super().__init__(**kw)
        self.booked: list[str] = []

    def book(self, request):
        self.booked.append(request.accounting_entry_id)
        if request.accounting_entry_id in self.refuse:
            return BookingResult.failure("account_unknown", "No such account.")
        return BookingResult.success(external_id=f"R-{len(self.booked)}")


class NotYet(Recording):
    name = "not-yet"
    label = "An ERP still being built"
    selectable = False


def request(entry_id="e1", **kw) -> BookingRequest:
    return BookingRequest(
        item={"accountingEntryId": entry_id},
        idempotency_key=f"key-{entry_id}",
        pleo_job_id=uuid.UUID(int=1),
        **kw,
    )


def receipt(name="r.pdf", content_type="application/pdf", size=1000, data=b"%PDF") -> ReceiptFile:
    return ReceiptFile(
        name=name,
        content_type=content_type,
        size=size,
        sha256="0" * 64,
        opener=lambda: io.BytesIO(data),
    )


# --- the defaults ----------------------------------------------------------------------------


def test_the_defaults_precheck_passes_book_is_required_lookup_is_unsupported():
    adapter = AccountingAdapter(company=None)
    assert adapter.precheck(request()) == ItemCheck(ok=True)
    with pytest.raises(NotImplementedError):
        adapter.book(request())
    with pytest.raises(LookupUnsupported):
        adapter.lookup(idempotency_key="key-e1")
    with pytest.raises(LookupUnsupported):
        adapter.lookup(accounting_entry_id=uuid.uuid4())
    assert adapter.attachment_limits.judge([]) == ()
    assert [p.limit for p in adapter.attachment_limits.judge([receipt()])] == ["count"]


def test_book_batch_books_one_by_one_in_order_with_one_result_each():
    adapter = Recording(company=None)
    adapter.refuse = frozenset({"b"})
    results = adapter.book_batch([request("a"), request("b"), request("c")])
    assert adapter.booked == ["a", "b", "c"]
    assert [(r.booked, r.external_id, r.failure_type) for r in results] == [
        (True, "R-1", None),
        (False, "", "account_unknown"),
        (True, "R-3", None),
    ]
    assert adapter.book_batch([]) == []


def test_check_and_validation_results_carry_pleos_failure_types():
    failed = ItemCheck.failed("tag_unknown", "The tag 'Project X' is not in the ERP.")
    assert (failed.ok, failed.failure_type) == (False, ItemFailureReasonType.TAG_UNKNOWN)
    assert failed.as_result() == BookingResult.failure("tag_unknown", failed.message)
    assert ItemCheck.passed("fine") == ItemCheck(ok=True, message="fine")
    with pytest.raises(AssertionError):
        ItemCheck.passed().as_result()
    with pytest.raises(ValueError):
        ItemCheck.failed("no_such_type", "x")
    job_failure = ValidationResult.failed("invalid_configuration", "x")
    assert job_failure.failure_type is JobFailureReasonType.INVALID_CONFIGURATION
    with pytest.raises(ValueError):  # an item-only type is not a job failure type
        ValidationResult.failed("tag_unknown", "x")


def test_a_booking_request_is_a_frozen_value_with_its_receipts():
    plain = request("e9")
    assert (plain.accounting_entry_id, plain.receipts) == ("e9", ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.idempotency_key = "other"
    file = receipt(data=b"%PDF-1.7")
    with_receipt = request("e9", receipts=(file,))
    with with_receipt.receipts[0].open() as stream:
        assert stream.read() == b"%PDF-1.7"
    # The opener is not part of the value: equal metadata, equal receipt.
    assert file == receipt(data=b"other bytes") and "opener" not in repr(file)


# --- attachment limits -----------------------------------------------------------------------


def test_pleos_limits_30_mb_these_types_any_number():
    limits = JournalAdapter.attachment_limits
    assert limits is PLEO_ATTACHMENT_LIMITS
    assert (limits.max_bytes, limits.max_count) == (30 * MB, None)
    office = "application/vnd.openxmlformats-officedocument"
    allowed = [
        ("application/pdf", True),
        ("image/jpeg", True),
        ("image/png", True),
        ("application/msword", True),
        (f"{office}.wordprocessingml.document", True),
        ("application/vnd.ms-excel", True),
        (f"{office}.spreadsheetml.sheet", True),
        ("text/plain", True),
        ("image/gif", False),
        ("image/heic", False),
        ("application/zip", False),
        ("text/html", False),
    ]
    assert [(kind, not limits.judge([(1, kind)])) for kind, _ in allowed] == allowed
    assert len(limits.content_types) == 8
    assert limits.judge([(30 * MB, "image/png"), (1, "TEXT/PLAIN; charset=utf-8")]) == ()
    assert limits.judge([(10, "application/pdf")] * 200) == ()


def test_judge_says_which_file_breaks_which_limit():
    limits = AttachmentLimits(
        max_bytes=10 * MB, max_count=2, content_types=frozenset({"application/pdf", "image/png"})
    )
    problems = limits.judge(
        [
            receipt("ok.pdf"),
            receipt("huge.png", "image/png", size=10 * MB + 1),
            receipt("third.gif", "image/gif"),
        ]
    )
    assert [(p.position, p.name, p.limit, p.failure_type) for p in problems] == [
        (2, "huge.png", AttachmentLimit.SIZE, "receipt_file_size_limit_exceeded"),
        (3, "third.gif", AttachmentLimit.COUNT, "receipt_upload_failure"),
        (3, "third.gif", AttachmentLimit.CONTENT_TYPE, "receipt_conversion_failure"),
    ]
    size, count, kind = (p.message for p in problems)
    assert "huge.png is 10.0 MB, larger than the 10.0 MB allowed" in size
    assert "at most 2" in count
    assert "image/gif" in kind and "application/pdf, image/png" in kind
    # (size, content type) pairs are named by their position.
    assert [p.name for p in limits.judge([(1, "application/pdf"), (1, "")])] == ["File 2"]


# --- the registry and selectability ----------------------------------------------------------


def test_a_registered_adapter_not_yet_selectable_is_built_but_not_offered_and_refuses_jobs(
    monkeypatch,
):
    monkeypatch.setitem(ADAPTERS, NotYet.name, NotYet)
    monkeypatch.setitem(ADAPTERS, Recording.name, Recording)
    keys = [key for key, _ in adapter_choices()]
    assert "recording" in keys and "journal" in keys and "not-yet" not in keys
    adapter = get_adapter("not-yet", company=None)
    assert isinstance(adapter, NotYet)
    refused = adapter.validate(object())
    assert (refused.ok, refused.failure_type) == (False, "invalid_configuration")
    assert "cannot book exports yet" in refused.message
    assert Recording(company=None).validate(object()).ok


def test_register_adapter_adds_by_name_and_refuses_a_clash(monkeypatch):
    monkeypatch.setattr("exports.adapters.ADAPTERS", dict(ADAPTERS))
    from exports import adapters

    assert register_adapter(Recording) is Recording
    assert adapters.ADAPTERS["recording"] is Recording
    assert register_adapter(Recording) is Recording  # the same class again: no change
    clash = type("Clash", (Recording,), {})
    with pytest.raises(ValueError, match="already registered"):
        register_adapter(clash)
    with pytest.raises(ValueError, match="no name"):
        register_adapter(type("Nameless", (AccountingAdapter,), {}))
