# The app through its real binary, one shell script per theme (tests/apps/, tests/interop/); each takes
# APP SHARED_DATA WORK_DIR and exits 77 (ctest: skipped, loudly) without the shared data.
if(NOT TARGET cram_bert_24h)
  return()
endif()

# cram_app_test(NAME SCRIPT WORK_DIR TIMEOUT [PROPERTIES...]): SCRIPT relative to tests/, labelled cpu.
function(cram_app_test name script work timeout)
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${script} $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/${work})
  set_tests_properties(${name} PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT ${timeout} ${ARGN})
endfunction()

# End to end on the shared real data: prepare, tokenize, train, interrupt and --resume, errors, GLUE.
cram_app_test(app_end_to_end apps/e2e.sh app_e2e 900)

# `compare` over two tiny runs, every cell checked against the runs' own files (docs/glue.md).
cram_app_test(app_compare apps/compare.sh app_compare 300)

# Signals, a SIGKILL soak, concurrent use, damaged checkpoints and command-line mistakes (docs/reliability.md).
cram_app_test(app_reliability apps/reliability.sh app_reliability 900)

# Hugging Face export/import (docs/interop.md), then the exported tokenizer.json against cram's ids with the npm
# `tokenizers` package (skipped, 77, without node or the package: set CRAM_NODE_MODULES to a node_modules
# directory holding it).
set(CRAM_NODE_MODULES "" CACHE PATH "node_modules directory with the npm package 'tokenizers' (tokenizer.json check)")
cram_app_test(app_hf_interop interop/hf_interop.sh app_hf_interop 600 FIXTURES_SETUP hf_export)
cram_app_test(app_hf_tokenizer interop/tokenizer_check.sh app_hf_interop 300 FIXTURES_REQUIRED hf_export)
if(CRAM_NODE_MODULES)  # else the environment's CRAM_NODE_MODULES / NODE_PATH, if any
  set_tests_properties(app_hf_tokenizer PROPERTIES ENVIRONMENT "CRAM_NODE_MODULES=${CRAM_NODE_MODULES}")
endif()

# Data-parallel training under mpirun (docs/distributed.md): 2 and 4 ranks bit for bit one process, resume
# across rank counts, signals, a killed rank. Needs the MPI build (skipped, 77, without mpirun).
if(CRAM_HAS_MPI)
  cram_app_test(app_distributed apps/distributed.sh app_distributed 900)
endif()

# The compared recipes (crammed, bert-original, izsak) on their small presets, fp16 loss scaling emulated on the
# CPU and forced to overflow, and the comparison report (docs/training.md).
cram_app_test(app_recipes apps/recipes.sh app_recipes 600)

# The GPU run script (benchmarks/run_gpu.sh) with no GPU: exit 2 naming why, its failure classifier on canned
# outputs, and its steps against a fake GPU and fake binaries (seconds; needs neither the app nor the data).
cram_app_test(app_gpu_run_dry apps/gpu_run_dry.sh app_gpu_run_dry 120)
