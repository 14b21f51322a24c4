"""nar: neural algorithmic reasoning, made practical.

Synthetic algorithm traces (``nar.algorithms``, ``nar.data``), processor pretraining
(``nar.models``, ``nar.training``), a frozen-processor registry (``nar.registry``) and
transfer to raw-input tasks (``nar.natural``).
"""

__version__ = "0.1.0"
