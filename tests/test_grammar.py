"Tests for factornb.grammar: the lexicon and tokenizer, attractor counts recomputed from the words, the splits, leakage, the authors' templates."
import random
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("transformers")
from factornb.grammar import (make_lexicon, grammar_tokenizer, wug_nouns, template_split, sample_subject, grammar_corpus,
                              agreement_prompts, leakage, agreement_dataset, head_number, token_id, _family, CONSTRUCTIONS,
                              PADS, PREPOSITIONS, ADJECTIVES, VERBS, HEADS, ATTRACTORS)

LEX = make_lexicon()
NUMBER = {w: i for pairs in list(LEX.nouns.values()) + [LEX.irregular] for pair in pairs for i, w in enumerate(pair)}


def _nouns_before_verb(words):
    "Numbers of the nouns of a subject after its opening pad, in order, read off the words (the first is the head)."
    text = " ".join(words)
    pad = max((p for p in PADS if p and text.startswith(p + " ")), key=len, default="")
    return [NUMBER[w] for w in text[len(pad):].split() if w in NUMBER]


def test_bad_input():
    with pytest.raises(ValueError, match="fractions"): make_lexicon(fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="n"): wug_nouns(-1)
    with pytest.raises(ValueError, match="key"): template_split(("simple", "", ("to",)))
    with pytest.raises(ValueError, match="key"): template_split(("pp", "nowhere ,", ("to",)))
    with pytest.raises(ValueError, match="split"): sample_subject(random.Random(0), LEX, "dev")
    with pytest.raises(ValueError, match="n_attractors"): sample_subject(random.Random(0), LEX, "test", n_attractors=4)
    with pytest.raises(ValueError, match="n"): agreement_prompts(LEX, "test", 10)
    with pytest.raises(ValueError, match="heads"): agreement_prompts(LEX, "test", 8, heads="wug")
    with pytest.raises(ValueError, match="n_sentences"): grammar_corpus(0, LEX)
    with pytest.raises(ValueError, match="prompts"): leakage("the key", ["the key is red ."], [])
    with pytest.raises(TypeError, match="lexicon"): grammar_tokenizer({"nouns": {}})
    with pytest.raises(ValueError, match="n_samples"): agreement_dataset(7)


def test_lexicon_size_and_disjoint_categories():
    assert len(LEX.words) >= 1000
    stems = [s for pairs in LEX.nouns.values() for s, _ in pairs]
    assert len(stems) == len(set(stems))
    nounforms = set(NUMBER)
    assert not nounforms & ({w for v in VERBS for w in v} | set(ADJECTIVES) | set(PREPOSITIONS))
    assert {"man", "men", "mice"} <= nounforms and not {s for s, _ in LEX.irregular} & {s for s, _ in LEX.nouns["test"]}


def test_tokenizer_splits_regular_plurals_only():
    tok = grammar_tokenizer(LEX)
    for split in ("train", "test"):
        for s, p in LEX.nouns[split]: assert tok.tokenize(p) == [s, "##" + p[len(s):]]
    assert tok.tokenize("the men open the mice") == ["the", "men", "open", "the", "mice"]
    assert tok.unk_token_id not in tok(" ".join(LEX.words))["input_ids"]
    assert token_id(tok, "are") is not None and token_id(tok, "keys") is None


def test_every_template_family_reaches_every_split():
    for c, ks in CONSTRUCTIONS.items():
        for k in ks:
            if k >= 3: continue
            splits = [template_split(key) for key in _family(c, k)]
            assert {"train", "val", "test"} <= set(splits), (c, k)
    big = [template_split(("pp", PADS[0], (a, b, c))) for a in PREPOSITIONS[:6] for b in PREPOSITIONS[:6] for c in PREPOSITIONS]
    assert 0.6 < big.count("train") / len(big) < 0.8


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 ** 6), st.sampled_from(["train", "val", "test"]), st.integers(0, 3), st.integers(0, 1))
def test_attractor_count_recomputed_from_the_words(seed, split, n_attractors, plural):
    s = sample_subject(random.Random(seed), LEX, split, n_attractors, plural)
    numbers = _nouns_before_verb(s.words)
    assert numbers[0] == plural == s.plural
    assert sum(n != plural for n in numbers[1:]) == n_attractors == s.attractors
    assert template_split(s.template) == split
    assert {w for w in s.words[len(s.template[1].split()):] if w in NUMBER} <= {w for p in LEX.nouns[split] + (LEX.irregular if split == "train" else []) for w in p}


def test_prompt_sets_balanced_and_labelled_by_their_head():
    ps = agreement_prompts(LEX, "test", 80, seed=3)
    assert np.bincount(ps.attractors).tolist() == [20] * 4 and ps.labels.sum() == 40
    for p, y, a in zip(ps.prompts, ps.labels, ps.attractors):
        numbers = _nouns_before_verb(p.split())
        assert numbers[0] == y and sum(n != y for n in numbers[1:]) == a
    irr = agreement_prompts(LEX, "test", 16, heads="irregular")
    assert all(any(w in {x for pair in LEX.irregular for x in pair} for w in p.split()) for p in irr.prompts)
    assert all(len(_nouns_before_verb(p.split())) >= 2 for p in irr.prompts)      # never a bare training head
    assert agreement_prompts(LEX, "test", 80, seed=3).prompts == ps.prompts


def test_no_leak_and_the_check_can_fail():
    text = grammar_corpus(5000, LEX)
    for split in ("val", "test"):
        r = leakage(agreement_prompts(LEX, split, 80).prompts, text, LEX.nouns[split])
        assert r == {"verbatim": 0, "nouns": []}
    planted = text[7].split(" ")[:4]
    assert leakage([" ".join(planted)], text, [])["verbatim"] == 1
    assert leakage(["the key"], ["the keys are red ."], [])["verbatim"] == 0      # word-bounded: "key" is not "keys"
    assert leakage([], text, LEX.nouns["train"][:5])["nouns"]


def test_training_sentences_agree_in_simple_subjects():
    "In a sentence whose subject is 'the (adj) N' followed by a copula, the copula has the head's number."
    checked = 0
    for s in grammar_corpus(3000, LEX, seed=5):
        pad = max((p for p in PADS if p and s.startswith(p + " ")), key=len, default="")
        w = s[len(pad):].split()
        if w[0] != "the": continue
        i = 2 if w[1] in ADJECTIVES else 1
        if i + 1 < len(w) and w[i] in NUMBER and w[i + 1] in ("is", "are", "was", "were"):
            assert (w[i + 1] in ("are", "were")) == bool(NUMBER[w[i]]), s; checked += 1
    assert checked > 50


def test_authors_dataset():
    data = agreement_dataset(400, seed=3)
    for p, lab in zip(data.prompts, data.labels): assert head_number(p) == lab
    assert sorted(np.r_[data.extraction, data.heldout].tolist()) == list(range(400))
    assert agreement_dataset(400, seed=3).prompts == data.prompts
    with pytest.raises(ValueError, match="head noun"): head_number("The cabinet near the door")
    assert {w for pair in HEADS + ATTRACTORS for w in pair} >= {w for p in data.prompts for w in p.split() if w in
                                                                 {x for pair in HEADS + ATTRACTORS for x in pair}}
