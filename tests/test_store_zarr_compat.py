"""The zarr compatibility module: the version guard and the internals it relies on."""

import numpy as np
import pytest
import zarr

from latentgeo.store import _zarr_compat as compat


def test_installed_zarr_is_supported_and_internals_exist():
    low, high = compat.ZARR_SUPPORTED
    assert low <= compat.check_zarr_version() < high
    # Every internal name the fast paths use, so a zarr release that moves one fails here.
    from zarr.codecs import BytesCodec  # noqa: F401
    from zarr.core.buffer import default_buffer_prototype  # noqa: F401
    from zarr.core.sync import sync  # noqa: F401

    arr = zarr.create_array(store={}, shape=(1, 2), chunks=(1, 2), dtype="f8")
    for name in ("resize", "setitem", "store_path"):
        assert hasattr(arr.async_array, name)
    assert hasattr(arr.metadata, "encode_chunk_key") and hasattr(arr.metadata, "chunk_grid")


@pytest.mark.parametrize("version", ["2.18.3", "3.0.6", "3.1.3", "4.0.0", "4.1.0rc1"])
def test_unsupported_versions_are_refused(version):
    with pytest.raises(ImportError, match=f"zarr {version} is installed"):
        compat.check_zarr_version(version)


@pytest.mark.parametrize("version", ["3.1.4", "3.1.6", "3.2.0.dev3+g1234"])
def test_supported_versions_pass(version):
    assert compat.check_zarr_version(version)[0] == 3


@pytest.mark.parametrize("n_samples", [7, 8])  # a padded edge chunk and an exact fit
def test_raw_chunks_read_back_as_zarr_writes(tmp_path, n_samples):
    # Raw chunks written by write_step read back through zarr's public API exactly as
    # the same values written by zarr itself.
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(3, n_samples, 5)) for _ in range(3)]
    ours = zarr.create_array(
        tmp_path / "ours.zarr",
        shape=(0, 3, n_samples, 5),
        chunks=(1, 1, 4, 5),
        dtype="f8",
        compressors=None,
        filters=None,
        fill_value=0.0,
    )
    theirs = zarr.create_array(
        tmp_path / "theirs.zarr",
        shape=(3, 3, n_samples, 5),
        chunks=(1, 1, 4, 5),
        dtype="f8",
        compressors=None,
        filters=None,
        fill_value=0.0,
    )
    assert compat.raw_chunks(ours, 0, values[0]) is not None
    for i, v in enumerate(values):
        compat.write_step(i, [(ours, v)])
        theirs[i] = v
    assert ours.shape == theirs.shape
    for i in range(3):
        np.testing.assert_array_equal(compat.read_step(ours, i), theirs[i])
    # Chunks past a step are deleted, and zarr then reads the fill value there.
    compat.delete_chunks_from(ours, 1)
    np.testing.assert_array_equal(compat.read_step(ours, 0), values[0])
    assert (compat.read_step(ours, 2) == 0.0).all()
