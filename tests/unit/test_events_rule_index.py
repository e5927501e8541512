"""RuleIndex gives exactly the rules a full scan matches, over varied patterns and events."""

from __future__ import annotations

import random
from typing import Any

from stratum.services.events.patterns import RuleIndex, compile_pattern

PATTERNS: list[dict[str, Any]] = [
    {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
     "detail": {"ModelPackageGroupName": ["g1", "g2"], "ModelApprovalStatus": ["Approved"]}},
    {"source": [{"prefix": "com.example."}], "detail": {"n": [{"numeric": [">", 3]}]}},
    {"source": ["com.example.ci"], "detail": {"status": [{"anything-but": ["failed"]}]}},
    {"detail-type": [{"equals-ignore-case": "BUILD"}], "detail": {"$or": [{"tags": ["t1"]}, {"owner": [{"exists": True}]}]}},
    {"detail": {"items": {"name": ["a", {"prefix": "b"}]}}},  # arrays of objects in the event
    {"source": [{"exact": "x"}], "detail": {"ip": [{"cidr": "10.0.0.0/8"}]}},
    {"resources": [{"prefix": "arn:aws:sagemaker:"}]},
    {"detail": {"missing": [{"exists": False}]}},
    {"$or": [{"source": ["a"]}, {"source": ["b"]}]},
    {"source": ["10.1.2.3"]},  # an IP string: not indexed (its other spellings match too)
]


def _event(rng: random.Random) -> dict[str, Any]:
    return {"source": rng.choice(["aws.sagemaker", "com.example.ci", "com.example.cd", "x", "a", "b", "other"]),
            "detail-type": rng.choice(["SageMaker Model Package State Change", "build", "Build", "BUILD", "deploy"]),
            "resources": rng.choice([[], ["arn:aws:sagemaker:us-east-1:1:pipeline/p"], ["arn:aws:s3:::b"]]),
            "detail": {"ModelPackageGroupName": rng.choice(["g1", "g2", "g3"]),
                       "ModelApprovalStatus": rng.choice(["Approved", "Rejected"]),
                       "n": rng.randrange(6), "status": rng.choice(["ok", "failed"]),
                       "tags": rng.choice([["t1"], ["t2"], "t1"]), "ip": rng.choice(["10.1.1.1", "11.0.0.1"]),
                       "items": rng.choice([[{"name": "a"}], [{"name": "bee"}, {"name": "z"}], {"name": "c"}, []]),
                       **({"owner": "me"} if rng.random() < 0.3 else {}),
                       **({"missing": 1} if rng.random() < 0.3 else {})}}


def test_index_agrees_with_a_full_scan() -> None:
    nodes = [compile_pattern(p) for p in PATTERNS]
    index = RuleIndex(nodes)
    assert len(index.always) < len(nodes)  # most of these rules are filed under an anchor
    rng = random.Random(11)
    for _ in range(3000):
        event = _event(rng)
        assert index.match(event) == [i for i, n in enumerate(nodes) if n.matches(event)], event
