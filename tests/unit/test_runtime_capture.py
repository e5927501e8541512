"""Data capture records in the format Model Monitor reads, their S3 keys, sampling and buffering."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from runtime_testing import endpoint_route

from stratum.services.sagemaker_runtime import capture

CONFIG = {"EnableCapture": True, "InitialSamplingPercentage": 50, "DestinationS3Uri": "s3://bucket/prefix/",
          "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]}
AT = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)


def test_record_format() -> None:
    line = capture.record(CONFIG, request_body=b"1,2,3", request_type="text/csv", response_body=b'{"p": 0.5}',
                          response_type="application/json", at=AT, inference_id="id-1", event_id="e-1")
    assert line == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3",
                              "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": '{"p": 0.5}',
                               "encoding": "JSON"}},
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-03-04T05:06:07.891Z", "inferenceId": "id-1"},
        "eventVersion": "0"}


def test_content_type_header_and_base64() -> None:
    config = {**CONFIG, "CaptureContentTypeHeader": {"CsvContentTypes": ["text/x-csv"],
                                                     "JsonContentTypes": ["application/jsonlines"]}}
    line = capture.record(config, request_body=b"1,2", request_type="text/x-csv; charset=utf-8",
                          response_body=b"\xff\x00", response_type="application/jsonlines", at=AT)
    assert line["captureData"]["endpointInput"]["encoding"] == "CSV"
    output = line["captureData"]["endpointOutput"]
    assert output["encoding"] == "BASE64"  # a JSON type, but not UTF-8: kept exact
    assert base64.b64decode(output["data"]) == b"\xff\x00"
    plain_csv = capture.record(config, request_body=b"1", request_type="text/csv", response_body=b"1",
                               response_type="text/csv", at=AT)  # the header replaces the defaults
    assert plain_csv["captureData"]["endpointInput"]["encoding"] == "BASE64"


def test_capture_modes() -> None:
    only_output = {**CONFIG, "CaptureOptions": [{"CaptureMode": "Output"}]}
    line = capture.record(only_output, request_body=b"a", request_type="text/csv", response_body=b"b",
                          response_type="text/csv", at=AT)
    assert list(line["captureData"]) == ["endpointOutput"]
    both = {**CONFIG, "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}
    assert len(capture.record(both, request_body=b"a", request_type=None, response_body=b"b", response_type=None,
                              at=AT)["captureData"]) == 2


def test_object_uri() -> None:
    assert capture.object_uri("s3://bucket/prefix/", "my-endpoint", "AllTraffic", AT, "abc") == \
        "s3://bucket/prefix/my-endpoint/AllTraffic/2026/03/04/05/06-07-891-abc.jsonl"


def test_sampling() -> None:
    assert not capture.sampled(None)
    assert not capture.sampled({**CONFIG, "EnableCapture": False}, lambda: 0.0)
    assert capture.sampled(CONFIG, lambda: 0.49) and not capture.sampled(CONFIG, lambda: 0.5)
    assert capture.sampled({**CONFIG, "InitialSamplingPercentage": 100}, lambda: 0.999999)
    assert not capture.sampled({**CONFIG, "InitialSamplingPercentage": 0}, lambda: 0.0)


def test_buffer_groups_records_by_endpoint_variant_and_hour() -> None:
    written: list[tuple[str, str, str, bytes]] = []
    buffer = capture.CaptureBuffer(lambda route, variant, uri, data: written.append((route.name, variant, uri, data)))
    route = endpoint_route("111122223333", "ep", [("v", 1.0, {"c": "http://x"})], data_capture=CONFIG)
    later = AT.replace(hour=6)
    for at, variant in ((AT, "v"), (AT, "v"), (AT, "w"), (later, "v")):
        buffer.add(route, variant, at, {"at": at.isoformat()})
    assert buffer.flush() == 3
    assert buffer.flush() == 0  # nothing twice
    by_uri = {uri: data for _role, _region, uri, data in written}
    first = next(uri for uri in by_uri if "/ep/v/2026/03/04/05/" in uri)
    assert [json.loads(x) for x in by_uri[first].splitlines()] == [{"at": AT.isoformat()}] * 2
    assert any("/ep/w/2026/03/04/05/" in uri for uri in by_uri)
    assert any("/ep/v/2026/03/04/06/" in uri for uri in by_uri)
    assert sorted((name, variant) for name, variant, _u, _d in written) == [("ep", "v"), ("ep", "v"), ("ep", "w")]
