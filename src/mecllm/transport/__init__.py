"""What the processes of a real run talk over: gRPC on loopback with the run's token, deadlines
and size limits (:mod:`.rpc`), tensors in the safetensors format checked before anything is
allocated (:mod:`.tensors`), and child processes that die with their parent
(:mod:`mecllm.core.processes`)."""
