"""Keep the stack's known warnings off stderr.

nbgrader scores a test cell 0 when it writes anything to stderr, so the kit silences the
handful of warnings fastai, torch and pandas print on every run. Each filter matches one
known message; any other warning, and every error, still shows.
"""

import warnings

KNOWN = [
    # fastai's import: torch 2.14 deprecates torch.jit.script, which fastai still calls.
    (FutureWarning, r"`torch\.jit\.script` is deprecated"),
    # fastai's import sets pandas's removed chained-assignment option.
    (Warning, r"The 'mode\.chained_assignment' option is deprecated"),
    # CollabDataLoaders.from_df hands torch a read-only numpy view.
    (UserWarning, r"The given NumPy array is not writable"),
    # dls.test_dl on users or titles the model never saw (cold start): fastai maps them to #na#.
    (Warning, r"Constructing a Categorical with a dtype and values containing non-null entries"),
    # fastcore writes fastai's config.ini without closing it.
    (ResourceWarning, r"unclosed file .*config\.ini"),
]


def silence_known_warnings() -> None:
    for category, message in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category)
