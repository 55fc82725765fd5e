"""Consensus and agreement on hand-made cases whose answers are worked out by hand here."""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd
import pytest

from micrograde.labeling.agreement import (
    agreement_by_expertise,
    agreement_report,
    cohen_kappa_matrix,
    confusion_between,
    fleiss_kappa,
)
from micrograde.labeling.consensus import EXPERTISE_WEIGHTS, consensus


def votes(rows):
    """rows: (micrograph_id, annotator, expertise, label)."""
    return pd.DataFrame(rows, columns=["micrograph_id", "annotator", "expertise", "label"])


def by_id(table):
    return table.set_index("micrograph_id").to_dict("index")


def test_weights_increase_with_expertise():
    levels = ["undergrad", "grad", "postdoc", "senior-scientist"]
    assert [EXPERTISE_WEIGHTS[lv] for lv in levels] == sorted(EXPERTISE_WEIGHTS[lv] for lv in levels)
    assert len(set(EXPERTISE_WEIGHTS.values())) == 4


def test_consensus_rules_by_hand():
    w = EXPERTISE_WEIGHTS
    table = consensus(
        votes(
            [
                # 1: unanimous
                (1, "g1", "grad", "good"), (1, "p1", "postdoc", "good"),
                # 2: senior good (4) outweighs undergrad + grad bad (1 + 2); spans good and bad
                (2, "u1", "undergrad", "bad"), (2, "g1", "grad", "bad"), (2, "s1", "senior-scientist", "good"),
                # 3: postdoc medium (3) vs undergrad good (1): clear, support 3/4
                (3, "p1", "postdoc", "medium"), (3, "u1", "undergrad", "good"),
                # 4: weighted tie 2 grads good (2 + 2) vs senior medium (4): the senior's label wins
                (4, "g1", "grad", "good"), (4, "g2", "grad", "good"), (4, "s1", "senior-scientist", "medium"),
                # 5: tie between two postdocs, good vs bad: the conservative label (bad) wins
                (5, "p1", "postdoc", "good"), (5, "p2", "postdoc", "bad"),
                # 6: tie between two postdocs, good vs medium: medium
                (6, "p1", "postdoc", "good"), (6, "p2", "postdoc", "medium"),
                # 7: three postdocs medium (9) vs a senior good (4): support 9/13 >= 2/3 but the senior disagrees
                (7, "p1", "postdoc", "medium"), (7, "p2", "postdoc", "medium"), (7, "p3", "postdoc", "medium"),
                (7, "s1", "senior-scientist", "good"),
                # 8: grad medium (2) vs undergrad good (1): support exactly 2/3 -> not disputed
                (8, "g1", "grad", "medium"), (8, "u1", "undergrad", "good"),
            ]
        )
    )
    r = by_id(table)
    assert list(table["micrograph_id"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (r[1]["label"], r[1]["disputed"], r[1]["n_annotators"], r[1]["support"]) == ("good", False, 2, 1.0)

    s2 = w["senior-scientist"] / (w["undergrad"] + w["grad"] + w["senior-scientist"])
    assert r[2]["label"] == "good" and r[2]["support"] == pytest.approx(s2) and r[2]["disputed"]

    assert r[3]["label"] == "medium" and r[3]["support"] == pytest.approx(0.75) and not r[3]["disputed"]

    assert r[4]["label"] == "medium" and r[4]["support"] == pytest.approx(0.5) and r[4]["disputed"]
    assert r[5]["label"] == "bad" and r[5]["disputed"]
    assert r[6]["label"] == "medium" and r[6]["disputed"]

    assert r[7]["label"] == "medium" and r[7]["support"] == pytest.approx(9 / 13) and 9 / 13 >= 2 / 3
    assert r[7]["disputed"]  # only because the senior scientist disagrees

    assert r[8]["label"] == "medium" and r[8]["support"] == pytest.approx(2 / 3) and not r[8]["disputed"]


def test_good_and_bad_is_disputed_even_with_high_support():
    # 4 seniors say good (16), one undergrad says bad (1): support 16/17 but labels span good and bad
    rows = [(1, f"s{i}", "senior-scientist", "good") for i in range(4)] + [(1, "u", "undergrad", "bad")]
    r = by_id(consensus(votes(rows)))[1]
    assert r["label"] == "good" and r["support"] == pytest.approx(16 / 17) and r["disputed"]


def test_consensus_rejects_bad_input():
    with pytest.raises(ValueError, match="label"):
        consensus(votes([(1, "a", "grad", "great")]))
    with pytest.raises(ValueError, match="expertise"):
        consensus(votes([(1, "a", "professor", "good")]))
    with pytest.raises(ValueError, match="more than one"):
        consensus(votes([(1, "a", "grad", "good"), (1, "a", "grad", "bad")]))
    assert consensus(votes([])).empty


def two_raters(pairs):
    rows = []
    for i, (a, b) in enumerate(pairs, start=1):
        rows += [(i, "A", "grad", a), (i, "B", "postdoc", b)]
    return votes(rows)


def test_cohen_kappa_from_the_2x2_table():
    # a = both good, b = A good / B bad, c = A bad / B good, d = both bad
    a, b, c, d = 3, 1, 0, 2
    pairs = [("good", "good")] * a + [("good", "bad")] * b + [("bad", "good")] * c + [("bad", "bad")] * d
    n = a + b + c + d
    p_o = Fraction(a + d, n)
    p_e = Fraction(a + b, n) * Fraction(a + c, n) + Fraction(c + d, n) * Fraction(b + d, n)
    expected = float((p_o - p_e) / (1 - p_e))
    assert expected == pytest.approx(2 / 3)
    m = cohen_kappa_matrix(two_raters(pairs))
    assert m.loc["A", "B"] == pytest.approx(expected) and m.loc["B", "A"] == pytest.approx(expected)
    assert m.loc["A", "A"] == 1.0

    conf = confusion_between(two_raters(pairs), "A", "B")
    assert conf.loc["good", "good"] == a and conf.loc["good", "bad"] == b
    assert conf.loc["bad", "good"] == c and conf.loc["bad", "bad"] == d
    assert conf.loc["medium"].sum() == 0 and int(conf.to_numpy().sum()) == n


def test_cohen_kappa_undefined_or_unshared_is_nan():
    latest = votes([(1, "A", "grad", "good"), (2, "A", "grad", "good"), (1, "B", "grad", "good"),
                    (2, "B", "grad", "good"), (3, "C", "grad", "bad")])
    m = cohen_kappa_matrix(latest)
    assert math.isnan(m.loc["A", "B"])  # both always "good": p_e = 1
    assert math.isnan(m.loc["A", "C"])  # nothing shared


def test_fleiss_kappa_by_hand():
    items = {1: ["good", "good", "good"], 2: ["good", "good", "bad"], 3: ["medium", "medium", "bad"],
             4: ["bad", "bad", "bad"]}
    rows = [(i, f"r{j}", "grad", lab) for i, labs in items.items() for j, lab in enumerate(labs)]
    rows.append((5, "r0", "grad", "medium"))  # a single rater: not counted
    cats = ["good", "medium", "bad"]
    n = 3
    p_i = [Fraction(sum(labs.count(c) ** 2 for c in cats) - n, n * (n - 1)) for labs in items.values()]
    p_bar = sum(p_i) / len(p_i)
    total = n * len(items)
    p_e = sum(Fraction(sum(labs.count(c) for labs in items.values()), total) ** 2 for c in cats)
    expected = float((p_bar - p_e) / (1 - p_e))
    assert expected == pytest.approx(7 / 15)
    assert fleiss_kappa(votes(rows)) == pytest.approx(expected)


def test_fleiss_kappa_perfect_and_empty():
    rows = [(i, r, "grad", lab) for i, lab in enumerate(["good", "bad", "medium"]) for r in ("a", "b")]
    assert fleiss_kappa(votes(rows)) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa(votes([])))
    assert math.isnan(fleiss_kappa(votes([(1, "a", "grad", "good")])))


def test_agreement_by_expertise_by_hand():
    # senior S and postdoc P agree on 1-3; undergrad U disagrees on 2 and 3; micrograph 4 only U (ignored)
    rows = [
        (1, "S", "senior-scientist", "good"), (1, "P", "postdoc", "good"), (1, "U", "undergrad", "good"),
        (2, "S", "senior-scientist", "bad"), (2, "P", "postdoc", "bad"), (2, "U", "undergrad", "good"),
        (3, "S", "senior-scientist", "medium"), (3, "P", "postdoc", "medium"), (3, "U", "undergrad", "bad"),
        (4, "U", "undergrad", "bad"),
    ]
    latest = votes(rows)
    table = agreement_by_expertise(latest).set_index("expertise")
    assert list(table.index) == ["undergrad", "postdoc", "senior-scientist"]
    # consensus of 1-3 is S/P's label: U agrees on 1 of 3 multi-rated micrographs
    assert table.loc["undergrad", "agreement_with_consensus"] == pytest.approx(1 / 3)
    assert table.loc["undergrad", "n_labels"] == 4
    assert table.loc["postdoc", "agreement_with_consensus"] == pytest.approx(1.0)
    kappa = cohen_kappa_matrix(latest)
    assert kappa.loc["P", "S"] == pytest.approx(1.0)
    assert table.loc["postdoc", "mean_kappa_vs_others"] == pytest.approx(
        (kappa.loc["P", "S"] + kappa.loc["P", "U"]) / 2
    )

    report = agreement_report(latest)
    assert report.n_annotators == 3 and report.n_micrographs == 4 and report.n_labels == 10
    assert report.n_disputed == 1  # micrograph 2: labels span good and bad
    text = report.to_text()
    assert "Fleiss" in text and "senior-scientist" in text
    d = report.to_dict()
    assert d["cohen_kappa"]["P"]["S"] == pytest.approx(1.0) and len(d["confusion"]) == 3
