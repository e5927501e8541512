"""Where an invocation goes: the variant (TargetVariant, else random by CurrentWeight), the instance
(round-robin over the variant's instances) and the containers (by the endpoint's mode)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from stratum.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute
from stratum.services.sagemaker_runtime import errors


def choose_variant(route: EndpointRoute, target: str | None, draw: Callable[[], float] = random.random
                   ) -> VariantRoute:
    fleet = route.variants
    if route.canary and draw() < route.canary_fraction:
        fleet = route.canary  # a blue/green update's new fleet takes its share of the traffic
    if target is not None:
        for variant in (*fleet, *route.variants, *route.canary):
            if variant.name == target:
                return variant
        raise errors.validation(f"The variant {target} does not exist for endpoint {route.name}. "
                                f"Check the variant name and try again.")
    if not fleet:
        raise errors.service_unavailable(f"Endpoint {route.name} has no production variant serving requests.")
    weighted = [v for v in fleet if v.weight > 0]
    if not weighted:  # every weight 0: traffic is spread evenly rather than refused
        weighted = list(fleet)
        total = float(len(weighted))
        point = draw() * total
        return weighted[min(int(point), len(weighted) - 1)]
    total = sum(v.weight for v in weighted)
    point = draw() * total
    for variant in weighted:
        point -= variant.weight
        if point < 0:
            return variant
    return weighted[-1]


def containers_for(route: EndpointRoute, variant: VariantRoute, target_container: str | None) -> tuple[str, ...]:
    """The containers an invocation passes through, in order."""
    if route.mode == "Direct":
        if target_container is None:
            raise errors.validation(f"Endpoint {route.name} is configured for direct invocation. Specify a "
                                    f"TargetContainerHostname to invoke one of its containers.")
        if target_container not in variant.containers:
            raise errors.validation(f"Container with hostname {target_container} does not exist for endpoint "
                                    f"{route.name}.")
        return (target_container,)
    if target_container is not None:
        raise errors.validation(f"TargetContainerHostname is only supported for endpoints configured for direct "
                                f"invocation; endpoint {route.name} is not.")
    if route.mode == "Serial":
        return variant.containers
    return variant.containers[:1]


class RoundRobin:
    """The next instance of each variant, in turn (one counter per endpoint ARN and variant)."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], itertools.count[int]] = {}

    def instance(self, route: EndpointRoute, variant: VariantRoute) -> InstanceRoute:
        instances = variant.instances
        if not instances:
            raise errors.service_unavailable(f"No instance of variant {variant.name} of endpoint {route.name} is "
                                             f"available to serve the request. Try your call again.")
        if len(instances) == 1:
            return instances[0]
        key = (route.arn, variant.name)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = itertools.count()
        return instances[next(counter) % len(instances)]
