# run.cmake: one fuzz.run.<target> test: fuzzes a copy of the seed corpus for SECONDS. Fails on a crash,
# a leak, a timeout or an out-of-memory, naming the reproducer libFuzzer left in artifacts/NAME/.
# Arguments (-D): FUZZER, NAME, SEEDS, WORK, SECONDS, RSS_MB.
set(corpus ${WORK}/corpus/${NAME})
set(artifacts ${WORK}/artifacts/${NAME})
file(MAKE_DIRECTORY ${corpus} ${artifacts})
# The seeds join what earlier runs found (kept: later runs start from there).
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${corpus})
file(GLOB before ${artifacts}/*)
execute_process(COMMAND ${FUZZER} -max_total_time=${SECONDS} -rss_limit_mb=${RSS_MB} -timeout=10 -max_len=4096
                        -print_final_stats=1 -artifact_prefix=${artifacts}/ ${corpus}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB after ${artifacts}/*)
  if(before)
    list(REMOVE_ITEM after ${before})
  endif()
  message(FATAL_ERROR "fuzz_${NAME} failed (exit ${rc}); reproducer: ${after}\n"
                      "replay it: ${FUZZER} ${after}")
endif()
