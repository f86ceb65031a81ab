"""The evaluation axes: ``core`` (what an axis is, the prompt formats, batched replies),
``choice`` (multiple-choice axes by option log-likelihood, ``scoring``), ``generation``
(axes read from generated replies) and ``drift`` (distance from the base off the training topic)."""
