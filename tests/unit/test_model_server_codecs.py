"""The model servers' encoders and decoders against the formats the real containers and the
SageMaker SDK produce: RecordIO-protobuf (the SDK's RecordSerializer and record_pb2), the XGBoost
container's CSV / LIBSVM parsing and messages, sagemaker-containers' CSV / JSON encoders."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from stratum.algorithms import recordio
from stratum.algorithms.inference import UnsupportedFormatError, decode, encode, encode_toolkit
from stratum.algorithms.xgboost import serve

sagemaker_common = pytest.importorskip("sagemaker.amazon.common")


def test_recordio_reads_the_sdk_dense_and_sparse_records() -> None:
    from scipy.sparse import csr_matrix

    dense = np.array([[1.5, 2.0, -3.25], [0.0, 4.0, 5.5]], dtype=np.float32)
    buffer = io.BytesIO()
    sagemaker_common.write_numpy_to_dense_tensor(buffer, dense, labels=np.array([1.0, 0.0]))
    features, labels = recordio.read_features(buffer.getvalue())
    assert np.array_equal(features, dense) and labels.tolist() == [1.0, 0.0]

    # What RecordSerializer sends to an endpoint.
    from sagemaker.serializers import RecordSerializer

    payload = RecordSerializer().serialize(dense)
    assert RecordSerializer().CONTENT_TYPE == "application/x-recordio-protobuf"
    features, labels = recordio.read_features(payload.read() if hasattr(payload, "read") else payload)
    assert np.array_equal(features, dense) and labels is None

    sparse = csr_matrix(np.array([[0, 2.5, 0, 0], [1.0, 0, 0, 7.0]], dtype=np.float32))
    buffer = io.BytesIO()
    sagemaker_common.write_spmatrix_to_sparse_tensor(buffer, sparse)
    features, _ = recordio.read_features(buffer.getvalue())
    assert features.shape == (2, 4) and np.array_equal(features.toarray(), sparse.toarray())

    with pytest.raises(ValueError, match="Invalid RecordIO magic"):
        recordio.read_features(b"\x00" * 12)


def test_recordio_records_we_write_parse_with_the_sdk() -> None:
    from sagemaker.amazon.record_pb2 import Record

    data = b"".join(recordio.frame(recordio.encode_record({"predicted_label": [1.0], "probabilities": [0.25, 0.75]}))
                    for _ in range(2))
    records = sagemaker_common.read_records(io.BytesIO(data))
    assert len(records) == 2
    assert isinstance(records[0], Record)
    assert list(records[1].label["probabilities"].float32_tensor.values) == [0.25, 0.75]
    assert list(records[0].label["predicted_label"].float32_tensor.values) == [1.0]


def test_xgboost_content_types_as_the_container_parses_them() -> None:
    assert serve.get_content_type(None) == "libsvm"  # no Content-Type: LIBSVM, as the container
    assert serve.get_content_type("text/csv; label_size=1") == "csv"
    assert serve.get_content_type("text/x-libsvm") == "libsvm"
    assert serve.get_content_type("application/x-recordio-protobuf") == "recordio-protobuf"
    with pytest.raises(serve.UserError) as exc:
        serve.get_content_type("application/json")
    assert str(exc.value) == ("application/json is not an accepted ContentType: csv, libsvm, parquet, "
                              "recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, application/x-parquet, "
                              "application/x-recordio-protobuf.")
    with pytest.raises(serve.UserError, match="label_size must be equal to 1"):
        serve.get_content_type("text/csv;label_size=2")


def test_xgboost_csv_and_libsvm_payloads() -> None:
    for payload in (b"1,2,3", b"1,2,3\n", b"1,2,3\r\n"):
        dmatrix, kind = serve.parse_content(payload, "text/csv")
        assert kind == "csv" and (dmatrix.num_row(), dmatrix.num_col()) == (1, 3)
    dmatrix, _ = serve.parse_content(b"1,,3\n4,5,6\n7,8,9\n", "text/csv")
    assert (dmatrix.num_row(), dmatrix.num_col()) == (3, 3)
    with pytest.raises(RuntimeError) as exc:
        serve.parse_content(b"1,2\n3\n", "text/csv")
    assert str(exc.value).startswith("Loading csv data failed with Exception, please ensure data is in csv format:")
    # LIBSVM: 1-based indices are shifted, a leading label is ignored.
    matrix = serve.libsvm_matrix("3 1:0.5 3:2\n2:1.5")
    assert matrix.toarray().tolist() == [[0.5, 0.0, 2.0], [0.0, 1.5, 0.0]]


def test_xgboost_output_encodings() -> None:
    assert serve.array_to_csv([1.5, 2.25]) == "1.5\n2.25\n"
    assert json.loads(serve.encode_predictions_as_json([0.5, 1.0])) == {"predictions": [{"score": 0.5},
                                                                                         {"score": 1.0}]}
    assert serve.parse_accept(None) == "text/csv" and serve.parse_accept("*/*") == "text/csv"
    assert serve.parse_accept("application/JSON") == "application/json"
    with pytest.raises(ValueError) as exc:
        serve.parse_accept("text/plain")
    assert str(exc.value) == ("Accept type text/plain is not supported. Please use supported accept types: "
                              "['application/json', 'application/jsonlines', 'application/x-recordio-protobuf', "
                              "'text/csv'].")
    chosen = serve._selected(np.array([0.8, 0.2]), ["predicted_label", "probability"], "binary:logistic", "")
    assert chosen == [{"predicted_label": 1, "probability": pytest.approx(0.8)},
                      {"predicted_label": 0, "probability": pytest.approx(0.2)}]
    lines = serve.encode_selected(chosen, ["predicted_label", "probability"], "application/jsonlines", False)
    assert [json.loads(line)["predicted_label"] for line in lines.decode().splitlines()] == [1, 0]
    assert serve.encode_selected(chosen, ["predicted_label", "probability"], "text/csv", True) == b"1,0.8\n0,0.2\n"
    assert serve.encode_selected(chosen, ["predicted_label", "probability"], "text/csv", False) == b"1,0.8\n0,0.2"


def test_script_mode_default_codecs() -> None:
    # sagemaker-containers: CSV rows through csv.reader, squeezed; JSON by numpy; exact types only.
    assert decode("1,2\n3,4\n", "text/csv").tolist() == [["1", "2"], ["3", "4"]]
    assert decode("1,2,3", "text/csv").shape == (3,)
    assert decode("[[1, 2]]", "application/json").tolist() == [[1, 2]]
    with pytest.raises(UnsupportedFormatError, match="Content type text/csv; charset=utf-8 is not supported"):
        decode("1", "text/csv; charset=utf-8")
    assert encode(np.array([1.5, 2.0]), "text/csv") == b"1.5\n2.0\n"
    assert encode(np.array([[1, 2], [3, 4]]), "text/csv") == b"1,2\n3,4\n"
    assert json.loads(encode(np.array([1, 2]), "application/json")) == [1, 2]
    with pytest.raises(UnsupportedFormatError):
        encode([1], "text/plain")
    # The inference toolkit takes the first type of an Accept list it can encode.
    assert encode_toolkit([1, 2], "text/plain, application/json") == (b"[1, 2]", "application/json")
