import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_interface_for_model.embeddings_file import EmbeddingFileError, read_embeddings, write_embeddings


@pytest.mark.parametrize("ext", [".parquet", ".npz"])
def test_round_trip(tmp_path, ext):
    vectors = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    path = tmp_path / f"e{ext}"
    write_embeddings(path, [str(i) for i in range(5)], ["Beach"] * 5, vectors)
    table = read_embeddings(path)
    assert table.ids.tolist() == ["0", "1", "2", "3", "4"] and table.dimension == 4
    np.testing.assert_array_equal(table.vectors, vectors)
    assert [p.name for p in tmp_path.iterdir()] == [f"e{ext}"]


def test_mixed_dimensions_are_refused(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"mp4_id": ["1", "2"], "label": ["Beach", "Sea"],
                             "embedding": [[1.0, 2.0], [1.0, 2.0, 3.0]]}), path)
    with pytest.raises(EmbeddingFileError, match="mixed dimensions.*'2'"):
        read_embeddings(path)


def test_nans_are_refused(tmp_path):
    path = tmp_path / "nan.npz"
    np.savez(path, ids=np.array(["1", "2"]), labels=np.array(["Beach", "Sea"]),
             vectors=np.array([[1.0, np.nan], [0.0, 1.0]], dtype=np.float32))
    with pytest.raises(EmbeddingFileError, match="NaN.*'1'"):
        read_embeddings(path)


def test_any_label_is_kept_and_bad_ids_are_refused(tmp_path):
    write_embeddings(tmp_path / "x.npz", ["1", "2"], ["Cats", ""], np.zeros((2, 2)))  # another catalog's, none
    assert read_embeddings(tmp_path / "x.npz").labels.tolist() == ["Cats", ""]
    with pytest.raises(EmbeddingFileError, match="control character"):
        write_embeddings(tmp_path / "x.npz", ["1"], ["two\nlines"], np.zeros((1, 2)))
    with pytest.raises(EmbeddingFileError, match="duplicate"):
        write_embeddings(tmp_path / "x.npz", ["1", "1"], ["Sea", "Sea"], np.zeros((2, 2)))
    with pytest.raises(EmbeddingFileError, match="unknown format"):
        write_embeddings(tmp_path / "x.csv", ["1"], ["Sea"], np.zeros((1, 2)))
