"""Solvers of the fine-tuning system, by role: association steps, allocation steps, searches,
the plug-ins of the Dinkelbach loop (:mod:`.steps`) and the loop itself (:mod:`.loop`)."""
