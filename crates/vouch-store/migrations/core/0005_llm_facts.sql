-- What registration read from an LLM's weights file (GGUF: architecture, quantisation, context
-- length, vocabulary, chat template), as JSON the node owns; NULL for ONNX models, whose
-- `signature` says what they take and give.
ALTER TABLE models ADD COLUMN llm_facts TEXT;
