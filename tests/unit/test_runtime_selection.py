"""Where an invocation goes: variant by weight or TargetVariant, containers by mode, instances in turn."""

from __future__ import annotations

import pytest
from runtime_testing import endpoint_route

from stratum.protocol.errors import ServiceError
from stratum.services.sagemaker_runtime.selection import RoundRobin, choose_variant, containers_for


def _route(mode: str = "Single", weights: tuple[float, ...] = (3.0, 1.0), instances: int = 1):
    containers = {"first": "http://127.0.0.1:1", "second": "http://127.0.0.1:2"}
    return endpoint_route("111122223333", "ep", [(f"v{i}", w, [containers] * instances) for i, w in enumerate(weights)],
                          mode=mode)


def test_weighted_choice_follows_current_weights() -> None:
    route = _route(weights=(3.0, 1.0))
    assert choose_variant(route, None, lambda: 0.0).name == "v0"
    assert choose_variant(route, None, lambda: 0.74).name == "v0"
    assert choose_variant(route, None, lambda: 0.76).name == "v1"
    assert choose_variant(route, None, lambda: 0.9999).name == "v1"
    draws = iter(i / 1000 for i in range(1000))
    picks = [choose_variant(route, None, lambda: next(draws)).name for _ in range(1000)]
    assert picks.count("v0") == 750


def test_zero_weight_variants_get_no_traffic_unless_targeted() -> None:
    route = _route(weights=(0.0, 2.0))
    assert {choose_variant(route, None, lambda x=x: x / 10).name for x in range(10)} == {"v1"}
    assert choose_variant(route, "v0").name == "v0"


def test_unknown_target_variant_is_a_validation_error() -> None:
    with pytest.raises(ServiceError) as exc:
        choose_variant(_route(), "nope")
    assert exc.value.code == "ValidationError" and exc.value.status == 400


def test_containers_by_mode() -> None:
    single, serial, direct = _route("Single"), _route("Serial"), _route("Direct")
    variant = single.variants[0]
    assert containers_for(single, variant, None) == ("first",)
    assert containers_for(serial, serial.variants[0], None) == ("first", "second")
    assert containers_for(direct, direct.variants[0], "second") == ("second",)
    for route, target in ((direct, None), (direct, "third"), (single, "first"), (serial, "second")):
        with pytest.raises(ServiceError) as exc:
            containers_for(route, route.variants[0], target)
        assert exc.value.code == "ValidationError"


def test_round_robin_per_variant() -> None:
    route = _route(instances=3)
    turns = RoundRobin()
    picked = [turns.instance(route, route.variants[0]).instance_id for _ in range(6)]
    assert picked == ["v0-0", "v0-1", "v0-2", "v0-0", "v0-1", "v0-2"]
    assert turns.instance(route, route.variants[1]).instance_id == "v1-0"  # a counter of its own


def test_no_instance_is_service_unavailable() -> None:
    route = endpoint_route("111122223333", "ep", [("v", 1.0, [])])
    with pytest.raises(ServiceError) as exc:
        RoundRobin().instance(route, route.variants[0])
    assert (exc.value.code, exc.value.status) == ("ServiceUnavailable", 503)
