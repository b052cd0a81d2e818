"""Pagination (section 6.3): offsets, cursors, edges, the limit cap and the list-order switch."""

import re
from datetime import timedelta

import pytest

from tests.openapi_schemas import validate

CURSOR = re.compile(r"^[A-Z2-7=~]+$")


def make_jobs(sb, n: int) -> list[str]:
    """n jobs, created one minute apart (oldest first); returns their ids in creation order."""
    base = sb.state.now() - timedelta(minutes=n)
    return [
        sb.state.create_job(sb.company.id, 1, created_at=base + timedelta(minutes=i))["id"]
        for i in range(n)
    ]


def page(sb, **params) -> dict:
    response = sb.api.get("/v3/export-jobs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, "CursorPaginatedResponseExportJobV3", no_extra_fields=True)
    for name in ("startCursor", "endCursor"):
        if name in body["pagination"]:
            assert CURSOR.match(body["pagination"][name])
    return body


def ids(body) -> list[str]:
    return [j["id"] for j in body["data"]]


def test_empty_list(sb):
    body = page(sb)
    assert body["data"] == []
    p = body["pagination"]
    assert (p["hasNextPage"], p["hasPreviousPage"], p["total"]) == (False, False, 0)
    assert "startCursor" not in p and "endCursor" not in p
    assert p["currentRequestPagination"] == {"parameters": {}, "limit": 20}


def test_exactly_one_page(sb):
    jobs = make_jobs(sb, 5)
    body = page(sb, limit=5)
    assert ids(body) == jobs
    p = body["pagination"]
    assert (p["hasNextPage"], p["hasPreviousPage"], p["total"]) == (False, False, 5)
    # The cursor after the last row gives an empty last page.
    after = page(sb, limit=5, after=p["endCursor"])
    assert after["data"] == [] and after["pagination"]["hasNextPage"] is False
    assert after["pagination"]["hasPreviousPage"] is True


def test_cursor_paging_walks_everything_once(sb):
    jobs = make_jobs(sb, 7)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"after": cursor} if cursor else {})
        body = page(sb, **params)
        pages += 1
        seen += ids(body)
        p = body["pagination"]
        assert p["hasPreviousPage"] is (pages > 1)
        if not p["hasNextPage"]:
            break
        cursor = p["endCursor"]
    assert seen == jobs and pages == 3
    # Going back from the last page with `before=startCursor` gives the previous page.
    back = page(sb, limit=3, before=body["pagination"]["startCursor"])
    assert ids(back) == jobs[3:6]
    assert (
        back["pagination"]["currentRequestPagination"]["before"]
        == (body["pagination"]["startCursor"])
    )


def test_offset_paging_matches_cursor_paging(sb):
    jobs = make_jobs(sb, 7)
    by_offset = []
    for offset in (0, 3, 6):
        body = page(sb, limit=3, offset=offset)
        assert body["pagination"]["currentRequestPagination"]["offset"] == offset
        assert body["pagination"]["hasNextPage"] is (offset + 3 < 7)
        by_offset += ids(body)
    assert by_offset == jobs
    beyond = page(sb, limit=3, offset=50)
    assert beyond["data"] == [] and beyond["pagination"]["hasNextPage"] is False


def test_default_page_size_and_limit_cap(sb):
    jobs = make_jobs(sb, 105)
    default = page(sb)
    assert len(default["data"]) == 20 and default["pagination"]["hasNextPage"] is True
    capped = page(sb, limit=1000)
    assert len(capped["data"]) == 100
    assert capped["pagination"]["currentRequestPagination"]["limit"] == 100
    assert capped["pagination"]["total"] == 105
    rest = page(sb, limit=1000, after=capped["pagination"]["endCursor"])
    assert ids(capped) + ids(rest) == jobs


def test_page_size_switches(sb):
    make_jobs(sb, 12)
    sb.state.set_switches(page_size_default=5, page_size_max=8)
    assert len(page(sb)["data"]) == 5
    assert len(page(sb, limit=50)["data"]) == 8


@pytest.mark.parametrize(
    "params",
    [
        {"offset": 1, "after": "GA======"},
        {"before": "GA======", "after": "GA======"},
        {"after": "not-a-cursor"},
        {"after": "MFRGG==="},  # valid base32, not one of ours
        {"limit": -1},
        {"limit": "ten"},
        {"offset": -3},
        {"sorting_keys": "createdAt", "sorting_order": ["ASC", "DESC"]},
        {"sorting_keys": "createdAt", "sorting_order": "UP"},
    ],
)
def test_bad_pagination_params_are_400(sb, params):
    make_jobs(sb, 2)
    response = sb.api.get("/v3/export-jobs", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "BAD_REQUEST"


def test_sorting_keys(sb):
    jobs = make_jobs(sb, 4)
    body = page(sb, sorting_keys="createdAt", sorting_order="DESC")
    assert ids(body) == jobs[::-1]
    current = body["pagination"]["currentRequestPagination"]
    assert current["sortingKeys"] == ["createdAt"] and current["sortingOrder"] == ["DESC"]


def test_list_order_switch(sb):
    jobs = make_jobs(sb, 30)
    assert ids(page(sb, limit=100)) == jobs
    sb.state.set_switches(list_order="reverse")
    assert ids(page(sb, limit=100)) == jobs[::-1]
    sb.state.set_switches(list_order="shuffled")
    shuffled = ids(page(sb, limit=100))
    assert sorted(shuffled) == sorted(jobs) and shuffled not in (jobs, jobs[::-1])
    # Stable across requests, so paging a shuffled list neither repeats nor skips.
    first = page(sb, limit=12)
    second = page(sb, limit=100, after=first["pagination"]["endCursor"])
    assert ids(first) + ids(second) == shuffled


def test_list_order_applies_to_items_too(sb):
    job = sb.state.create_job(sb.company.id, 6)
    entries = [i["accountingEntryId"] for i in sb.state.get_job(job["id"])["items"]]
    sb.state.set_switches(list_order="reverse")
    listed = sb.api.get(f"/v3/export-jobs/{job['id']}/items").json()["data"]
    assert [i["accountingEntryId"] for i in listed] == entries[::-1]
