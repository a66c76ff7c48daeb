# The installed package works for a port (find_package + link + run). Not in sanitizer builds:
# the consumer is built without the sanitizer runtime the installed libraries need.
if(NOT QCONF_SANITIZE)
  add_test(NAME install_find_package
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/install_test.sh ${CMAKE_BINARY_DIR}
                   ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/install_test)
  set_tests_properties(install_find_package PROPERTIES LABELS script)
endif()

# Goldens are bit-identical under g++ and clang++, at -O0 and -O3 -march=native. Each
# configuration is its own test so ctest can run them side by side. `make test` runs clang -O3
# -march=native, which differs from the main build (gcc -O3, checked against the committed
# goldens by the GoldenCopy tests) in compiler and target (AVX-512 and FMA available: a
# contraction or a vectorized reassociation would show here); `make identity` runs all four (the
# other three carry the label identity_full). Four builds do not fit `make test`'s 15 minutes on
# 2 cores, and -O0 generation grew to ~3 minutes with the MoE layer ops.
foreach(cfg gcc-O0 gcc-O3native clang-O0 clang-O3native)
  add_test(NAME golden_identity_${cfg}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/golden_identity.sh ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/golden_identity ${cfg})
  if(cfg STREQUAL "clang-O3native")
    set_tests_properties(golden_identity_${cfg} PROPERTIES LABELS "slow;identity" TIMEOUT 1200)
  else()
    set_tests_properties(golden_identity_${cfg} PROPERTIES LABELS "slow;identity;identity_full"
                                                           TIMEOUT 1200)
  endif()
endforeach()

# The example Python harness (examples/python/harness.py): export, run in numpy, check.
if(QCONF_PYTHON3)
  add_test(NAME python_harness_export_check
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/harness_test.sh $<TARGET_FILE:qconf>
                   ${CMAKE_SOURCE_DIR} ${QCONF_PYTHON3} ${CMAKE_BINARY_DIR}/harness_test)
  set_tests_properties(python_harness_export_check PROPERTIES LABELS python)
endif()

# The HTML report in headless Chromium (Debian's chromium; `make deps` installs it). Registered
# whether or not chromium is found: without it the test fails and says what to install.
find_program(QCONF_CHROMIUM NAMES chromium chromium-browser)
if(QCONF_PYTHON3)
  add_test(NAME html_report_browser
           COMMAND ${QCONF_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/html_report_test.py
                   $<TARGET_FILE:qconf> ${CMAKE_SOURCE_DIR}/golden $<TARGET_FILE:qconf_bad_plugin>
                   "${QCONF_CHROMIUM}" ${CMAKE_BINARY_DIR}/html_report_test)
  set_tests_properties(html_report_browser PROPERTIES LABELS browser TIMEOUT 600
                       ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()

# libFuzzer on the fixture and results parsers: a small clang build of just the parsers
# (-fsanitize=fuzzer,address,undefined), the committed regression vectors, then 15 s per target.
add_test(NAME fuzz_parsers
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/fuzz_test.sh ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR}/fuzz 15 ${QCONF_PYTHON3})
set_tests_properties(fuzz_parsers PROPERTIES LABELS fuzz TIMEOUT 600)
