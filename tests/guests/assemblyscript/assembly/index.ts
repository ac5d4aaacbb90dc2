// A waPC actor written against the public AssemblyScript guest SDK
// (@wapc/as-guest), used by tests/test_guest_assemblyscript.py to prove that
// the wascc host speaks waPC as that SDK does.  Operations:
//   Echo     answer the payload bytes unchanged
//   Fail     error "as-guest failed: " + payload (UTF-8)
//   HostEcho hostCall("default", "wascc:testing", "Echo", payload); answer its
//            result, or hand the host's error back as the actor's error
//   Log      consoleLog(payload as UTF-8); answer empty
import {
  register,
  handleCall,
  handleAbort,
  hostCall,
  consoleLog,
  Result,
} from "@wapc/as-guest";

register("Echo", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.ok<ArrayBuffer>(payload);
});

register("Fail", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.error<ArrayBuffer>(
    new Error("as-guest failed: " + String.UTF8.decode(payload)),
  );
});

register("HostEcho", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  const result = hostCall("default", "wascc:testing", "Echo", payload);
  if (!result.isOk) {
    return Result.error<ArrayBuffer>(result.error()!);
  }
  return Result.ok<ArrayBuffer>(result.get());
});

register("Log", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  consoleLog(String.UTF8.decode(payload));
  return Result.ok<ArrayBuffer>(new ArrayBuffer(0));
});

// The SDK's required entry point (see its README): the host calls this.
export function __guest_call(operation_size: usize, payload_size: usize): bool {
  return handleCall(operation_size, payload_size);
}

// Used through `--use abort=assembly/index/abort` so that the module has no
// `env.abort` import: an AssemblyScript abort becomes a waPC guest error
// (followed by the trap AssemblyScript emits after abort).
function abort(
  message: string | null,
  fileName: string | null,
  lineNumber: u32,
  columnNumber: u32,
): void {
  handleAbort(message, fileName, lineNumber, columnNumber);
}
