"""The Open Inference Protocol over gRPC: the .proto, the code protoc generated from it, and the service."""
