"""LongGenBench: answer parsing, label alignment, packing, prompts (fast tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lm_eval_acbench import data
from lm_eval_acbench.metrics import longgenbench as lg
from lm_eval_acbench.tasks import longgenbench as task


def render(answers: dict[int, str], kind: str) -> str:
    """A protocol-following response with the given label -> answer blocks, in dict order."""
    parts = []
    for label, value in answers.items():
        shown = f"({value})" if kind == "letter" else value
        parts.append(f"Answer_{label}: Some reasoning about it. So the answer is {shown}.")
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- alignment rules

def test_all_correct():
    golds = ["3", "10", "7"]
    out = lg.align(render({1: "3", 2: "10", 3: "7"}, "number"), golds, "number")
    assert out.correct == [True, True, True] and out.accuracy == 1.0


def test_missing_answer_costs_only_itself():
    golds = ["3", "10", "7"]
    response = render({1: "3", 3: "7"}, "number")
    out = lg.align(response, golds, "number")
    assert out.predictions == ["3", None, "7"]
    assert out.correct == [True, False, True]
    # the original in-order zip shifts answer 3 onto question 2: only question 1 is right
    assert lg.zip_accuracy(response, golds, "number") == pytest.approx(1 / 3)


def test_extra_and_duplicate_answers_are_ignored_and_counted():
    golds = ["3", "10"]
    response = render({1: "3", 2: "10", 5: "99"}, "number") + "\n\n" + render({1: "4"}, "number")
    out = lg.align(response, golds, "number")
    assert out.correct == [True, True]
    assert out.extra == 1 and out.duplicates == 1


def test_out_of_order_answers_align_by_label():
    golds = ["B", "D", "A"]
    out = lg.align(render({3: "A", 1: "B", 2: "D"}, "letter"), golds, "letter")
    assert out.accuracy == 1.0


def test_multi_line_segments_count_here_but_not_in_the_original_rule():
    response = "Answer_1: First, 2 + 1.\nThen the answer is 3.\nAnswer_2: The answer is 4."
    assert lg.align(response, ["3", "4"], "number").accuracy == 1.0
    # the original pattern does not cross a newline, so it pairs "4" with question 1
    assert lg.zip_accuracy(response, ["3", "4"], "number") == 0.0


def test_segment_without_answer_is_wrong_and_first_answer_in_segment_counts():
    golds = ["5", "6"]
    response = "Answer_1: I am not sure.\nAnswer_2: The answer is 6. Wait, the answer is 8."
    out = lg.align(response, golds, "number")
    assert out.predictions == [None, "6"] and out.correct == [False, True]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is 1,000.", "1000"),
        ("the answer is $42", "42"),
        ("The answer is -3.", "-3"),
        ("The answer is 2.50", "2.5"),
        ("The answer is 7.0", "7"),
        ("answer is: 12", "12"),
        ("The answer is unknown", None),
    ],
)
def test_number_forms(text, expected):
    assert lg.extract_answer(text, "number") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is (C).", "C"),
        ("The answer is (c)", "C"),
        ("The answer is B.", "B"),
        ("the answer is a cat", None),  # a bare lower-case article is not a letter answer
        ("The answer is Apple", None),
        ("no answer here", None),
    ],
)
def test_letter_forms(text, expected):
    assert lg.extract_answer(text, "letter") == expected


def test_gsm8k_gold():
    assert lg.gsm8k_gold("Step one.\n#### 1,234") == "1234"
    assert lg.gsm8k_gold("12") == "12"  # a bare number is its own gold
    assert lg.gsm8k_gold("no marker 12") is None
    assert lg.gsm8k_gold("#### n/a") is None


# ----------------------------------------------------------------------------- property tests

numbers = st.integers(min_value=-10**6, max_value=10**6).map(str)
letters = st.sampled_from(list("ABCDEFGHIJ"))


@given(st.lists(numbers, min_size=1, max_size=12), st.randoms())
def test_property_any_label_order_scores_all_correct(golds, rnd):
    labels = list(range(1, len(golds) + 1))
    rnd.shuffle(labels)
    response = render({label: golds[label - 1] for label in labels}, "number")
    assert lg.align(response, golds, "number").accuracy == 1.0


@given(st.lists(letters, min_size=1, max_size=12), st.data())
def test_property_dropping_answers_costs_exactly_those(golds, draw):
    dropped = draw.draw(st.sets(st.integers(1, len(golds))))
    response = render({i: g for i, g in enumerate(golds, 1) if i not in dropped}, "letter")
    out = lg.align(response, golds, "letter")
    assert [not c for c in out.correct] == [i in dropped for i in range(1, len(golds) + 1)]


@given(st.text(max_size=400), st.lists(numbers, min_size=1, max_size=5))
def test_property_parser_never_raises_and_stays_in_range(text, golds):
    out = lg.align(text, golds, "number")
    assert 0.0 <= out.accuracy <= 1.0 and len(out.predictions) == len(golds)
    assert 0.0 <= lg.zip_accuracy(text, golds, "number") <= 1.0
    assert 0.0 <= lg.align(text, ["A"] * len(golds), "letter").accuracy <= 1.0


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_property_thousands_commas_do_not_matter(value):
    assert lg.normalize_number(f"{value:,}") == str(value)


# ----------------------------------------------------------------------------- packing and prompts

def test_packing_and_k_setting():
    records = task.load_subset("gsm8k", {"data_source": "sample", "longgenbench_gsm8k_k": 5})
    assert [r["k"] for r in records] == [5, 5, 2]  # 12 sample questions, last chunk shorter
    assert records[0]["golds"][:2] == ["19", "90"]
    assert records[0][data.SOURCE_FIELD] == "sample:longgenbench"
    mmlu = task.load_subset("mmlu", {"data_source": "sample", "longgenbench_mmlu_k": 3})
    assert [(r["subject"], r["k"]) for r in mmlu] == [("astronomy", 3), ("high school chemistry", 3)]
    assert mmlu[0]["golds"] == ["B", "C", "D"]


def test_prompt_and_scoring_hooks():
    ds = task.load_mmlu(data_source="sample", longgenbench_mmlu_k=2)["test"]
    doc = ds[0]
    text = task.doc_to_text(doc)
    assert "Question_1: Which planet is closest to the Sun?\n(A) Venus\n(B) Mercury" in text
    assert "Question_2:" in text and "Question_3:" not in text
    assert "Answer_i:" in doc["system"] and "The answer is (X)." in doc["system"]
    perfect = task.process_results(doc, [task.doc_to_target(doc)])
    assert perfect["acc_label_aligned"] == perfect["score"] == 1.0
    half = task.process_results(doc, ["Answer_2: The answer is (C)."])
    # label-aligned credits question 2; the reference rule reads no "Answer_<i>:\n" block at all
    assert half["acc_label_aligned"] == 0.5 and half["answered_frac"] == 0.5 and half["score"] == 0.0
    zipped = task.process_results(doc, ["Answer_2:\nThe answer is (C).\n\nAnswer_1:\nThe answer is (B)."])
    assert zipped["acc_label_aligned"] == 1.0 and zipped["score"] == 0.0  # position, not label


def test_local_folder(tmp_path):
    folder = tmp_path / "longgenbench"
    folder.mkdir()
    (folder / "gsm8k.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "bad"}\n')
    records = task.load_subset("gsm8k", {"data_dir": str(tmp_path)})
    assert len(records) == 1 and records[0]["golds"] == ["2"]
    assert records[0][data.SOURCE_FIELD] == f"local:{folder}"


# ----------------------------------------------------------------------------- the reference rule

def reference_reply(golds: list[str], kind: str, first: int = 1) -> str:
    shown = (lambda g: f"({g})") if kind == "letter" else str
    return "".join(f"Answer_{i}:\nStep by step. The answer is {shown(g)}.\n\n" for i, g in enumerate(golds, first))


@given(st.text(max_size=400), st.lists(numbers, min_size=1, max_size=5))
def test_property_reference_rule_never_raises_and_stays_in_range(text, golds):
    assert 0.0 <= lg.reference_zip_accuracy(text, golds, "number") <= 1.0
    assert 0.0 <= lg.reference_zip_accuracy(text, ["A"] * len(golds), "letter") <= 1.0


@given(st.lists(st.sampled_from("ABCD"), min_size=2, max_size=20), st.integers(1, 9))
def test_property_reference_rule_zips_by_position(golds, first):
    reply = reference_reply(golds, "letter", first)
    assert lg.reference_zip_accuracy(reply, golds, "letter") == 1.0
    assert lg.align(reply, golds, "letter", first_label=first).accuracy == 1.0
    # one missing answer: the reference rule shifts the rest, the label-aligned one does not
    shifted = reference_reply(golds[1:], "letter", first + 1)
    expected = sum(a == b for a, b in zip(golds[1:], golds)) / len(golds)
    assert lg.reference_zip_accuracy(shifted, golds, "letter") == pytest.approx(expected)
    assert lg.align(shifted, golds, "letter", first_label=first).accuracy == pytest.approx(1 - 1 / len(golds))
