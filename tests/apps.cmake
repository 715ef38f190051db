# End-to-end run of the app (tests/apps/e2e.sh) on the shared real data; skipped (77) without it.
if(TARGET cram_bert_24h)
  add_test(NAME app_end_to_end
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_e2e)
  set_tests_properties(app_end_to_end PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# `compare` over two tiny runs, every cell checked against the runs' own files (tests/apps/compare.sh,
# docs/glue.md); skipped (77) without the shared data.
if(TARGET cram_bert_24h)
  add_test(NAME app_compare
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/compare.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_compare)
  set_tests_properties(app_compare PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()

# Signals, a SIGKILL soak, concurrent use, damaged checkpoints and command-line mistakes through the
# binary (tests/apps/reliability.sh, docs/reliability.md); skipped (77) without the shared data.
if(TARGET cram_bert_24h)
  add_test(NAME app_reliability
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/reliability.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_reliability)
  set_tests_properties(app_reliability PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# Hugging Face export/import through the binary (tests/interop/hf_interop.sh, docs/interop.md), then the
# exported tokenizer.json against cram's ids with the npm `tokenizers` package (skipped, 77, without node or
# the package: set CRAM_NODE_MODULES to a node_modules directory holding it).
set(CRAM_NODE_MODULES "" CACHE PATH "node_modules directory with the npm package 'tokenizers' (tokenizer.json check)")
if(TARGET cram_bert_24h)
  add_test(NAME app_hf_interop
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/interop/hf_interop.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_hf_interop)
  set_tests_properties(app_hf_interop PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 600
                                                 FIXTURES_SETUP hf_export)
  add_test(NAME app_hf_tokenizer
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/interop/tokenizer_check.sh $<TARGET_FILE:cram_bert_24h>
                   ${CRAM_SHARED_DATA} ${CMAKE_CURRENT_BINARY_DIR}/app_hf_interop)
  set_tests_properties(app_hf_tokenizer PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 300
                                                   FIXTURES_REQUIRED hf_export)
  if(CRAM_NODE_MODULES)  # else the environment's CRAM_NODE_MODULES / NODE_PATH, if any
    set_tests_properties(app_hf_tokenizer PROPERTIES ENVIRONMENT "CRAM_NODE_MODULES=${CRAM_NODE_MODULES}")
  endif()
endif()

# Data-parallel training under mpirun (tests/apps/distributed.sh, docs/distributed.md): 2 and 4 ranks bit
# for bit one process, resume across rank counts, signals, a killed rank. Needs the MPI build and mpirun;
# skipped (77) without the shared data or mpirun.
if(TARGET cram_bert_24h AND CRAM_HAS_MPI)
  add_test(NAME app_distributed
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/distributed.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_distributed)
  set_tests_properties(app_distributed PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# The compared recipes (crammed, bert-original, izsak) on their small presets, fp16 loss scaling emulated on the
# CPU and forced to overflow, and the comparison report (tests/apps/recipes.sh); skipped (77) without the shared data.
if(TARGET cram_bert_24h)
  add_test(NAME app_recipes
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/recipes.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_recipes)
  set_tests_properties(app_recipes PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
