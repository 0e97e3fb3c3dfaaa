"""Errors and warnings FactVAE raises about its inputs and its training.

Import them from here to catch or filter them::

    from factvae_sk.exceptions import FactVAEWarning, InputFileError, NonFiniteLossError
"""

__all__ = ["FactVAEWarning", "InputFileError", "NonFiniteLossError", "ResultTooLargeError"]


class FactVAEWarning(UserWarning):
    """The input is accepted but probably not what the model expects (e.g. non-integer counts).

    Examples
    --------
    Turn them into errors for one block of code:

    >>> import warnings
    >>> import numpy as np
    >>> from factvae_sk import FactVAE
    >>> from factvae_sk.exceptions import FactVAEWarning
    >>> X = np.full((50, 30), 0.5)  # normalized values, not counts
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", FactVAEWarning)
    ...     try:
    ...         FactVAE(max_epochs=1).fit(X)
    ...     except FactVAEWarning as warning:
    ...         print("refused:", "non-integer" in str(warning))
    refused: True
    """


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite.

    Raised at the end of the first epoch in which a loss term was not finite; the message
    names the epoch and the term(s). :meth:`FactVAE.fit` leaves the estimator unfitted
    (no half-trained model full of NaN survives). Lower the learning rate or the loss
    weights, or check the data.

    Attributes
    ----------
    epoch : int
        The epoch (1-based) in which the loss was first non-finite.
    terms : list of str
        The history keys whose batch values were not finite (e.g. ``"train_loss"``,
        ``"kl_atac"``).

    Examples
    --------
    >>> from factvae_sk.exceptions import NonFiniteLossError
    >>> error = NonFiniteLossError("loss not finite in epoch 3", epoch=3, terms=["kl_atac"])
    >>> error.epoch, error.terms, isinstance(error, FloatingPointError)
    (3, ['kl_atac'], True)
    """

    def __init__(self, message, epoch=None, terms=()):
        super().__init__(message)
        self.epoch = epoch
        self.terms = list(terms)


class InputFileError(ValueError):
    """A user's file cannot be used: unreadable, malformed, or inconsistent with the others.

    Raised by the command line's readers (``factvae-sk fit``); ``factvae-sk`` turns it into
    one line on stderr and exit status 2. ``str(error)`` is ``"<path>: <problem>"``.

    Attributes
    ----------
    path : str
        The file at fault.
    problem : str
        What is wrong with it.

    Examples
    --------
    >>> from factvae_sk.exceptions import InputFileError
    >>> error = InputFileError("rna.npz", "the file is empty")
    >>> str(error), error.path, isinstance(error, ValueError)
    ('rna.npz: the file is empty', 'rna.npz', True)
    """

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class ResultTooLargeError(MemoryError):
    """A call would return a dense result larger than half the machine's memory.

    Raised before anything is allocated; the message gives the size and how to ask for
    less (a subset of peaks or genes, cells in batches, or ``out=`` an ``np.memmap``).

    Examples
    --------
    It is a ``MemoryError``, so code that already handles those catches it:

    >>> from factvae_sk.exceptions import ResultTooLargeError
    >>> issubclass(ResultTooLargeError, MemoryError)
    True
    """
