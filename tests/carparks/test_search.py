"""GET /api/v1/carparks: radius search nearest first, feature filters, pagination, bad parameters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import CarParkFactory

CENTRE = (52.4797, -1.9026)


@pytest.fixture
def city(company):
    # Roughly 0.3 km, 1.1 km, 1.9 km and 8 km from the centre, plus one archived car park.
    near = CarParkFactory(company=company, name="Near", latitude=52.4824, longitude=-1.9026, covered=True)
    middle = CarParkFactory(company=company, name="Middle", latitude=52.4896, longitude=-1.9026, ev_charging_bays=0)
    edge = CarParkFactory(
        company=company, name="Edge", latitude=52.4968, longitude=-1.9026, height_limit_m=Decimal("1.90")
    )
    far = CarParkFactory(company=company, name="Far", latitude=52.5517, longitude=-1.9026)
    CarParkFactory(
        company=company, name="Archived", latitude=52.4800, longitude=-1.9026, archived_at="2026-01-01T00:00Z"
    )
    return {"near": near, "middle": middle, "edge": edge, "far": far}


def search(client, **params):
    return client.get("/api/v1/carparks", {"lat": CENTRE[0], "lng": CENTRE[1], **params})


def test_search_returns_car_parks_within_radius_nearest_first_with_distance(anon, city):
    body = search(anon, radius_km=2).json()

    assert body["count"] == 3
    assert [row["name"] for row in body["results"]] == ["Near", "Middle", "Edge"]
    distances = [row["distance_m"] for row in body["results"]]
    assert distances == sorted(distances)
    assert 250 <= distances[0] <= 350
    assert 1800 <= distances[2] <= 2000
    assert set(body) == {"count", "next", "previous", "results"}


def test_radius_is_respected_precisely(anon, city):
    assert [row["name"] for row in search(anon, radius_km=1).json()["results"]] == ["Near"]
    assert search(anon, radius_km=10).json()["count"] == 4


def test_search_paginates(anon, city):
    first = search(anon, radius_km=50, page_size=2).json()
    assert first["count"] == 4
    assert [row["name"] for row in first["results"]] == ["Near", "Middle"]
    assert first["next"] is not None
    assert first["previous"] is None
    second = anon.get(first["next"]).json()
    assert [row["name"] for row in second["results"]] == ["Edge", "Far"]


def test_search_pages_count_every_match_and_refuse_pages_past_the_end(anon, city):
    last = search(anon, radius_km=50, page_size=3, page=2).json()
    assert last["count"] == 4
    assert [row["name"] for row in last["results"]] == ["Far"]
    assert last["next"] is None
    for page in (3, 0, "x"):
        response = search(anon, radius_km=50, page_size=3, page=page)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_only_a_search_by_position_takes_its_total_from_the_page_query(anon, city):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def counts(params):
        with CaptureQueriesContext(connection) as queries:
            body = anon.get("/api/v1/carparks", params).json()
        return body["count"], sum('COUNT(*) AS "__count"' in query["sql"] for query in queries.captured_queries)

    assert counts({"lat": CENTRE[0], "lng": CENTRE[1], "radius_km": 50}) == (4, 0)
    assert counts({}) == (4, 1)  # the catalogue by name: a plain COUNT, the page may stop early


def test_a_search_with_no_match_is_an_empty_first_page(anon, city):
    body = search(anon, radius_km=0.1).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"covered": "true"}, ["Near"]),
        ({"ev_charging": "true"}, ["Near", "Edge", "Far"]),
        ({"ev_charging": "false"}, ["Middle"]),
        ({"vehicle_height_m": "2.0"}, ["Near", "Middle", "Far"]),
        ({"accessible": "true", "q": "ear"}, ["Near"]),
    ],
)
def test_search_filters_by_features(anon, city, params, expected):
    body = search(anon, radius_km=50, **params).json()
    assert [row["name"] for row in body["results"]] == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 91, "lng": 0, "radius_km": 2}, "lat"),
        ({"lat": -90.5, "lng": 0, "radius_km": 2}, "lat"),
        ({"lat": 52, "lng": 181, "radius_km": 2}, "lng"),
        ({"lat": 52, "lng": 0, "radius_km": -1}, "radius_km"),
        ({"lat": 52, "lng": 0, "radius_km": 0}, "radius_km"),
        ({"lat": 52, "lng": 0, "radius_km": 10000}, "radius_km"),
        ({"lat": 52, "lng": 0, "radius_km": 50.01}, "radius_km"),
        ({"lat": 52, "lng": 0, "radius_km": "far"}, "radius_km"),
        ({"lat": "north", "lng": 0}, "lat"),
        ({"lat": 52}, "lng"),
        ({"radius_km": 2}, "lat"),
        ({"lat": 52, "lng": 0, "covered": "maybe"}, "covered"),
    ],
)
def test_bad_search_parameters_are_400_with_field_errors(anon, db, params, field):
    response = anon.get("/api/v1/carparks", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_radius_of_exactly_50_km_is_allowed(anon, city):
    assert search(anon, radius_km=50).status_code == 200


def test_search_near_the_antimeridian_does_not_fail(anon, company):
    CarParkFactory(company=company, name="Fiji", latitude=-17.0, longitude=179.99)
    body = anon.get("/api/v1/carparks", {"lat": -17.0, "lng": -179.99, "radius_km": 5}).json()
    assert [row["name"] for row in body["results"]] == ["Fiji"]
