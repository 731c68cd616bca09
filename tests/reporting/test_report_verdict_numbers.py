"""Every verdict word in a claim or a summary sentence sits beside the number it reads, and the
words agree with that number at the boundary: a p_random at its floor that BH does not let through
is printed with its q; "beat every baseline set" is said only when p_random = 0.05 means that (19
sets); a rate is printed with its interval; a pair that agrees by construction is not counted as an
independent agreement."""
from __future__ import annotations

import numpy as np
import pandas as pd

from interp_gan.reporting.section_ablation import claim as ablation_claim, summary_sentence, summary_table


def _ablation_rows(n_sets: int, p: list[float], q: list[float]) -> pd.DataFrame:
    rows = []
    for style, pv, qv in zip("abcd", p, q):
        for base in ("top", "random"):
            rows.append(dict(layer="L", units="1;2", intervention="zero", target=f"log_odds(style={style})",
                             effect=-0.3, ci_low=-0.4, ci_high=-0.2, n=16, k=2, baseline=base, style=style,
                             measure="log_odds", n_sets=1 if base == "top" else n_sets, direction="decrease",
                             p_random=pv if base == "top" else np.nan, q_random=qv if base == "top" else np.nan,
                             beyond_random=(qv <= 0.05) if base == "top" else np.nan,
                             random_low=-0.3, random_high=-0.1))
    return pd.DataFrame(rows)


def test_ablation_claim_prints_the_q_its_verdict_reads():
    """p_random at the 19-set floor (0.05) but q_random 0.2 after BH: 'not beyond random', and the
    reader sees q beside the p that alone would look like a pass."""
    df = _ablation_rows(19, p=[0.05, 0.5, 0.6, 0.7], q=[0.2, 0.7, 0.7, 0.7])
    c = ablation_claim(df)
    assert c.verdict == "not beyond random units" and not c.survives
    assert "p_random 0.0500" in c.baseline and "q_random 0.200" in c.baseline, c.baseline
    assert "BH over 4 selected-set rows" in c.baseline
    yes = ablation_claim(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4))
    assert yes.survives and "q_random 0.0500" in yes.baseline and "in 4 of 4 styles" in yes.text


def test_ablation_summary_says_beat_every_set_only_with_19_sets():
    """With 99 sets p_random = 0.03 is <= 0.05 without beating every set (two beat it); the sentence
    used to say "beat every one of 99 sets"."""
    df = _ablation_rows(99, p=[0.03, 0.01, 0.5, 0.6], q=[0.06, 0.04, 0.6, 0.6])
    s = summary_sentence(df, summary_table(df), 99, "shuffled")
    assert "beat every" not in s and "2 of 4 style x target rows reach p_random &le; 0.05 against 99" in s, s
    assert "1 are beyond random" in s and "over all 4 selected-set rows" in s
    s19 = summary_sentence(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4),
                           summary_table(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4)), 19, "shuffled")
    assert "beat every one of 19 shuffled sets" in s19, s19
