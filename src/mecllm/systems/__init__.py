"""The systems mecllm plans, one package each with the same nouns (instance, scenario, physics,
solution, algorithms, commands, experiments), and the registry that maps an instance's ``kind``
to its system (:mod:`mecllm.systems.registry`)."""
