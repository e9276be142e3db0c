{
  "targets": [
    {
      "target_name": "tsvmm",
      "sources": [
        "addon/common.cc",
        "addon/kvm.cc",
        "addon/memory.cc",
        "addon/vcpu.cc",
        "addon/vcpu_thread.cc",
        "addon/eventfd.cc",
        "addon/uv_poll.cc",
        "addon/fd_watcher.cc",
        "addon/fileio.cc",
        "addon/io_ring.cc",
        "addon/fs_at.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [
        # io_uring for virtio-blk where liburing's headers are installed (liburing-dev), linked
        # statically so the built addon also runs where the shared library is missing.
        ["<!(test -f /usr/include/liburing.h && echo 1 || echo 0)==1", {
          "defines": ["TSVMM_HAVE_LIBURING"],
          "libraries": ["-l:liburing.a"],
          "ldflags": ["-Wl,--exclude-libs,liburing.a"]
        }]
      ],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
