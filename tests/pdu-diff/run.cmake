# Runs the node-pdu differential test: cmake -DNODE= -DNPM= -DSRC= -DWORK=
# -DBIN= -DBUILD_DIR= -DCONFIG= -DSEED= -DCOUNT= -P run.cmake.
# Fails (never skips) without node/npm.
foreach(tool NODE NPM)
  if(NOT ${tool} OR NOT EXISTS "${${tool}}")
    string(TOLOWER ${tool} name)
    message(FATAL_ERROR
      "pdu_diff: '${name}' not found (${${tool}}). The differential test needs "
      "node and npm (Debian: apt-get install nodejs npm), then re-run cmake.")
  endif()
endforeach()

# The C half, built (or found up to date) here, so that running the test
# after building only some targets still compares the current codec.
set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target pdu_diff ${config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE build_out ERROR_VARIABLE build_out)
if(NOT rc EQUAL 0 OR NOT EXISTS "${BIN}")
  message(FATAL_ERROR "pdu_diff: building the pdu_diff target failed:\n${build_out}")
endif()

# node-pdu goes into the build tree, never the source tree; the script and
# the manifests travel with it so that require() finds node_modules.
file(MAKE_DIRECTORY "${WORK}")
foreach(f package.json package-lock.json pdu-diff.js)
  configure_file("${SRC}/${f}" "${WORK}/${f}" COPYONLY)
endforeach()

# npm ci only when the lock changed since the last install.
set(stamp "${WORK}/node_modules/.m2m-lock")
set(need_install TRUE)
if(EXISTS "${stamp}" AND EXISTS "${WORK}/node_modules/node-pdu/package.json")
  file(READ "${stamp}" old)
  file(READ "${WORK}/package-lock.json" new)
  if(old STREQUAL new)
    set(need_install FALSE)
  endif()
endif()
if(need_install)
  execute_process(COMMAND "${NPM}" ci --no-audit --no-fund --prefer-offline
                  WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pdu_diff: npm ci failed (${rc}) in ${WORK}")
  endif()
  configure_file("${WORK}/package-lock.json" "${stamp}" COPYONLY)
endif()

execute_process(COMMAND "${NODE}" "${WORK}/pdu-diff.js" "${BIN}" "${SEED}" "${COUNT}"
                WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pdu_diff: comparison failed (${rc})")
endif()
