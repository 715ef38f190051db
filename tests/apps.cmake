# End-to-end run of the app (tests/apps/e2e.sh) on the shared real data; skipped (77) without it.
if(TARGET cram_bert_24h)
  add_test(NAME app_end_to_end
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/e2e.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_e2e)
  set_tests_properties(app_end_to_end PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()

# Signals, a SIGKILL soak, concurrent use, damaged checkpoints and command-line mistakes through the
# binary (tests/apps/reliability.sh, docs/reliability.md); skipped (77) without the shared data.
if(TARGET cram_bert_24h)
  add_test(NAME app_reliability
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/apps/reliability.sh $<TARGET_FILE:cram_bert_24h> ${CRAM_SHARED_DATA}
                   ${CMAKE_CURRENT_BINARY_DIR}/app_reliability)
  set_tests_properties(app_reliability PROPERTIES LABELS cpu SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
