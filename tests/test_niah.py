"""Needle in a haystack: scoring rules, grid construction, settings, heatmap (fast tests)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lm_eval_acbench import data
from lm_eval_acbench.metrics import needle
from lm_eval_acbench.tasks import niah


# ----------------------------------------------------------------------------- scoring

def test_recall_reference_has_eleven_words():
    assert len(set(needle.words(needle.NEEDLE_ANSWER))) == 11


@pytest.mark.parametrize(
    "response, expected",
    [
        (needle.NEEDLE, 1.0),
        ("EAT a Sandwich, and sit in dolores-park on a SUNNY day!", 1.0),
        ("eat a sandwich", 3 / 11),
        ("Go to the Golden Gate Bridge.", 0.0),
        ("", 0.0),
        ("sandwich sandwich sandwich", 1 / 11),
    ],
)
def test_word_set_recall(response, expected):
    assert needle.word_set_recall(response) == pytest.approx(expected)


def test_rouge1_f_by_hand():
    assert needle.rouge1_f(needle.NEEDLE) == pytest.approx(1.0)
    assert len(needle.words(needle.NEEDLE)) == 21
    # response "eat a sandwich": 3 tokens, all in the 21-token needle -> P=1, R=3/21.
    assert needle.rouge1_f("eat a sandwich") == pytest.approx(2 * (3 / 21) / (1 + 3 / 21))
    assert needle.rouge1_f("nothing relevant here") == 0.0
    # multiset clipping: "a a a a" overlaps the needle's two "a"s only -> P=2/4, R=2/21.
    assert needle.rouge1_f("a a a a") == pytest.approx(2 * 0.5 * (2 / 21) / (0.5 + 2 / 21))


@given(st.text(max_size=300))
def test_scores_stay_in_unit_interval(text):
    scores = needle.score_response(text)
    assert 0.0 <= scores["recall"] <= 1.0
    assert 0.0 <= scores["rouge1_f"] <= 1.0


@given(st.text(max_size=200))
def test_recall_grows_when_the_answer_is_appended(text):
    assert needle.word_set_recall(text + " " + needle.NEEDLE_ANSWER) == 1.0


def test_grid_means_and_missing_cells():
    cells = [(1000, 0, 1.0), (1000, 0, 0.5), (1000, 50, 0.0), (2000, 50, 1.0)]
    grid = needle.grid(cells)
    assert grid["lengths"] == [1000, 2000]
    assert grid["depths"] == [0, 50]
    assert grid["scores"] == [[0.75, None], [0.0, 1.0]]
    assert grid["per_length"] == {1000: pytest.approx(0.5), 2000: 1.0}
    assert grid["per_depth"] == {0: 0.75, 50: 0.5}
    assert grid["overall"] == pytest.approx(2.5 / 4)


def test_process_results_keys():
    doc = {"context_length": 2000, "depth_percent": 33}
    out = niah.process_results(doc, ["eat a sandwich and sit in Dolores Park on a sunny day"])
    assert out["score"] == out["recall"] == out["recall_len_2000"] == out["recall_depth_33"] == 1.0
    assert 0 < out["rouge1_f"] < 1


# ----------------------------------------------------------------------------- grid construction

@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    return niah.load_tokenizer(str(smollm2_dir))


class CountingTokenizer:
    """The real tokenizer, with a count of how many texts it was asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.encoded_chars = 0
        self.calls = 0

    def __call__(self, text, **kwargs):
        self.calls += 1
        self.encoded_chars += len(text)
        return self.inner(text, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_haystack_is_tokenized_once_per_run(tokenizer):
    text = niah.filler_text(30)
    few, many = CountingTokenizer(tokenizer), CountingTokenizer(tokenizer)
    niah.build_grid(text, few, [300, 600], [0, 100])
    niah.build_grid(text, many, [300, 400, 500, 600], [0, 25, 50, 75, 100])
    assert many.calls == few.calls  # independent of the number of cells
    assert many.encoded_chars == few.encoded_chars


def test_cells_fit_their_length_and_needle_sits_at_sentence_ends(tokenizer):
    text = niah.filler_text(30)
    lengths, depths = [400, 700, 1000], [0, 11, 50, 89, 100]
    records = niah.build_grid(text, tokenizer, lengths, depths, "test")
    cells = [(r["context_length"], r["depth_percent"]) for r in records]
    assert cells == [(n, d) for n in lengths for d in depths]
    for record in records:
        prompt = record["prompt"]
        assert prompt.count(needle.NEEDLE) == 1
        assert prompt.rstrip().endswith("Answer:") and needle.QUESTION in prompt.split("</document>")[1]
        assert record["prompt_tokens"] <= record["context_length"]
        assert record["prompt_tokens"] > record["context_length"] - 80  # cut back by at most a sentence
        document = prompt.split("<document>\n", 1)[1].split("\n</document>", 1)[0]
        before = document.split(needle.NEEDLE, 1)[0].rstrip()
        assert before == "" or before.endswith((".", "!", "?"))
        assert document.rstrip().endswith((".", "!", "?"))
        assert record["acbench_data_source"] == "test"
    for length in lengths:
        row = [r for r in records if r["context_length"] == length]
        positions = [r["needle_relative_position"] for r in row]
        assert positions == sorted(positions)
        assert row[0]["needle_token_position"] == 0
        assert row[-1]["needle_relative_position"] == 1.0  # 100% = the very end
        mid = row[2]["needle_relative_position"]
        assert 0.35 < mid <= 0.5  # moved back from 50% to a sentence end, never forward


def test_joined_sentence_texts_equal_a_per_cell_decode(tokenizer):
    haystack = niah.Haystack(niah.filler_text(60), tokenizer, 3000)
    assert haystack.sentences is not None  # byte-level BPE: the fast path applies
    for length in (500, 1800, 3000):
        for depth in (0, 33, 100):
            text, ids, _ = haystack.cell_text(length, depth)
            assert text == tokenizer.decode(ids)
    fast = haystack.cell(1800, 33)
    haystack.sentences = None  # the per-cell decode fallback gives the same record
    assert haystack.cell(1800, 33) == fast


def test_short_haystack_is_repeated(tokenizer):
    records = niah.build_grid("One short sentence. Another one here.", tokenizer, [400], [50])
    assert records[0]["prompt_tokens"] > 300


def test_grid_settings_defaults_and_caps(tokenizer):
    lengths, depths = niah.grid_settings({"max_length": 4096}, tokenizer)
    assert lengths == [1000, 2000, 3000]  # 4000 > 4096 - 64 - 64
    assert depths == [0, 11, 22, 33, 44, 56, 67, 78, 89, 100]
    lengths, depths = niah.grid_settings(
        {"max_length": 2048, "niah_context_lengths": "512, 1024,4096", "niah_depth_percents": [50, 0]},
        tokenizer,
    )
    assert lengths == [512, 1024] and depths == [0, 50]
    with pytest.raises(data.DataUnavailable):
        niah.grid_settings({"max_length": 2048, "niah_depth_percents": [120]}, tokenizer)
    with pytest.raises(data.DataUnavailable):
        niah.grid_settings({"max_length": 2048, "niah_context_lengths": [9000]}, tokenizer)


def test_window_from_model_config(smollm2_dir, tokenizer):
    from transformers import AutoConfig

    expected = AutoConfig.from_pretrained(smollm2_dir).max_position_embeddings
    assert niah.model_window({"pretrained": str(smollm2_dir)}, tokenizer) == expected


# ----------------------------------------------------------------------------- data sources

def test_sample_haystack_is_our_generator_output():
    for seed in range(3):
        path = data.sample_dir("niah") / f"filler_{seed}.txt"
        assert path.read_text() == niah.filler_text(40, seed=seed) + "\n"
    assert "sandwich" not in niah.filler_text(200).lower()


def test_loader_sources(smollm2_dir, tmp_path):
    md = {"pretrained": str(smollm2_dir), "niah_context_lengths": [300], "niah_depth_percents": [0, 100]}
    ds = niah.load_niah(**md, data_source="sample")["test"]
    assert len(ds) == 2 and set(ds["acbench_data_source"]) == {"sample:niah"}
    essays = tmp_path / "niah"
    essays.mkdir()
    (essays / "essay.txt").write_text("My own essay has exactly these words. It is short. " * 40)
    ds = niah.load_niah(**md, data_dir=str(tmp_path))["test"]
    assert set(ds["acbench_data_source"]) == {f"local:{essays}"}
    assert "My own essay" in ds[0]["prompt"]
    with pytest.raises(data.DataUnavailable):
        niah.load_niah(niah_context_lengths=[300])  # no tokenizer


# ----------------------------------------------------------------------------- heatmap

def test_heatmap_from_samples_log(tmp_path):
    from analysis.niah_heatmap import niah_heatmap

    log = tmp_path / "samples_acbench_niah_x.jsonl"
    rows = []
    for length in (512, 1024):
        for depth in (0, 50, 100):
            response = needle.NEEDLE if depth != 50 or length == 512 else "I do not know."
            row = {"doc": {"context_length": length, "depth_percent": depth}, "filtered_resps": [response]}
            if length == 512:
                row["recall"] = needle.word_set_recall(response)  # logged value; 1024 recomputed
            rows.append(row)
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    png = tmp_path / "heat.png"
    grid = niah_heatmap(log, png)
    assert grid["lengths"] == [512, 1024] and grid["depths"] == [0, 50, 100]
    assert grid["scores"] == [[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    assert grid["per_length"] == {512: 1.0, 1024: pytest.approx(2 / 3)}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert grid["png"] == str(png)


@given(st.text(max_size=300))
def test_property_reference_recall_is_a_share_of_whitespace_words(text):
    from lm_eval_acbench.metrics import needle as nd

    value = nd.reference_word_recall(text)
    assert 0.0 <= value <= 1.0
    assert nd.reference_word_recall(text + " " + nd.NEEDLE_ANSWER) == 1.0
    assert nd.reference_word_recall("Dolores Park, on a sunny day.") < nd.word_set_recall("Dolores Park, on a sunny day.")
