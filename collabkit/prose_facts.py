"""Reference: facts about the reference models that the notebooks' prose states in words.

Runs in the reference kernel (reference.py evaluates these right after the cells named in its
RECORD), so each figure lands in solutions/reference.json beside the metrics, and
grader_tests/test_prose_numbers.py checks every sentence that states it. Nothing here is
shipped to students or used in grading.
"""

from __future__ import annotations


def bias_facts(learn, ratings) -> dict:
    """The ten lowest and ten highest movie biases with each film's number and mean of ratings,
    and the mean |bias| of films by how many ratings they have (03's table and scatter text)."""
    import pandas as pd

    titles = list(learn.dls.classes["title"])
    bias = learn.model.i_bias.weight.detach().cpu().double().reshape(-1).tolist()
    series = pd.Series(bias, index=titles).drop("#na#").sort_values()
    stats = ratings.groupby("title")["rating"].agg(["mean", "count"])

    def rows(part):
        return [
            {
                "title": t,
                "bias": round(b, 4),
                "count": int(stats.loc[t, "count"]),
                "mean": round(float(stats.loc[t, "mean"]), 3),
            }
            for t, b in part.items()
        ]

    both = stats.join(series.rename("bias"), how="inner")
    few, many = both[both["count"] < 10], both[both["count"] >= 100]
    return {
        "lowest10": rows(series.head(10)),
        "highest10": rows(series.tail(10)[::-1]),
        "mean_abs_bias_under_10_ratings": round(float(few["bias"].abs().mean()), 4),
        "mean_abs_bias_100_plus_ratings": round(float(many["bias"].abs().mean()), 4),
        "titles_under_10_ratings": int(len(few)),
    }
