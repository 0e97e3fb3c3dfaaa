"""Writing the job's large tables: the same bytes as ``DataFrame.to_csv``, several times faster.

pandas formats every float of a table through a Python call and a missing-value check of
its own: at a 10x Multiome's size (108,000 peaks x 50 latent dimensions in
``peak_embeddings.csv``, 12,000 cells x 100 in ``cell_embeddings.csv``) that took most of a
minute. Here each row is one ``%`` formatting of all its fields, which gives the same text.
Tables this path does not cover exactly (missing values, text that needs quoting, other
column types) are written by pandas.
"""

import numpy as np
import pandas as pd

# Characters for which csv (pandas' writer, QUOTE_MINIMAL) quotes a field.
_NEEDS_QUOTES = (",", '"', "\n", "\r")


def _plain_text(values):
    """Whether csv writes every one of ``values`` (strings) as it is, unquoted."""
    return not any(any(c in v for c in _NEEDS_QUOTES) or v == "" for v in values)


def _plain_strings(column):
    return all(isinstance(v, str) for v in column) and _plain_text(column)


def write_csv(frame, path, float_format="%.6g", block=20_000):
    """Write ``frame`` as ``frame.to_csv(path, index=False, float_format=float_format)`` does.

    Parameters
    ----------
    frame : DataFrame
    path : path-like
    float_format : str, default="%.6g"
    block : int, default=20000
        Rows formatted at a time (bounds the memory of the text).
    """
    formats, columns = [], []
    for name in frame.columns:
        column = frame[name]
        dtype = column.dtype
        if pd.api.types.is_float_dtype(dtype) and isinstance(dtype, np.dtype):
            if np.isnan(column.to_numpy()).any():
                break
            formats.append(float_format)
        elif pd.api.types.is_integer_dtype(dtype) and isinstance(dtype, np.dtype):
            formats.append("%d")
        elif pd.api.types.is_object_dtype(dtype) and _plain_strings(column):
            formats.append("%s")
        else:
            break
        columns.append(column.to_numpy())
    else:
        if _plain_text([str(name) for name in frame.columns]):
            row = ",".join(formats) + "\n"
            with open(path, "w") as handle:
                handle.write(",".join(map(str, frame.columns)) + "\n")
                for start in range(0, len(frame), block):
                    rows = zip(*(c[start : start + block].tolist() for c in columns), strict=True)
                    handle.write("".join([row % values for values in rows]))
            return
    frame.to_csv(path, index=False, float_format=float_format)
