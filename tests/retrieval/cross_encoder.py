"""A tiny cross-encoder for tests: a real ONNX graph and a real tokenizer.json, built offline in a blink.

It reads (query, passage) as a BERT cross-encoder does ([CLS] query [SEP] passage [SEP], token types
0 then 1) and scores the pair by how often the passage (type 1 only) says :data:`WORD`: a score a
test can predict, so it can check that the service feeds the right pairs and follows the scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

WORD = "zebra"
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def _tokenizer(words: list[str]) -> Tokenizer:
    vocab = {token: i for i, token in enumerate([*_SPECIAL, *words])}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


def _graph(vocab_size: int, word_id: int, two_classes: bool) -> onnx.ModelProto:
    weights = np.zeros(vocab_size, dtype=np.float32)
    weights[word_id] = 1.0
    tokens = ["batch", "tokens"]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, tokens)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    nodes = [
        helper.make_node("Gather", ["weights", "input_ids"], ["per_token"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["token_type_ids"], ["passage"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["per_token", "mask"], ["masked"]),
        helper.make_node("Mul", ["masked", "passage"], ["in_passage"]),
        helper.make_node("ReduceSum", ["in_passage", "axes"], ["relevant"], keepdims=1),
    ]
    if two_classes:  # (n, 2): [not relevant, relevant], as some cross-encoders answer
        nodes += [
            helper.make_node("Neg", ["relevant"], ["irrelevant"]),
            helper.make_node("Concat", ["irrelevant", "relevant"], ["logits"], axis=1),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["relevant"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "tiny-cross-encoder",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2 if two_classes else 1])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every ONNX Runtime since 1.10 reads
    onnx.checker.check_model(model)
    return model


def build(directory: Path, *, two_classes: bool = False) -> Path:
    """Write ``model.onnx`` and ``tokenizer.json`` into ``directory``; returns it (RETRIEVAL_RERANK_MODEL)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer([WORD])
    tokenizer.save(str(directory / "tokenizer.json"))
    onnx.save(_graph(tokenizer.get_vocab_size(), tokenizer.token_to_id(WORD), two_classes), directory / "model.onnx")
    return directory


def expected_score(passage: str) -> float:
    """What the tiny model scores ``passage``: how many times it says :data:`WORD`."""
    return float(_tokenizer([WORD]).encode(passage).tokens.count(WORD))
