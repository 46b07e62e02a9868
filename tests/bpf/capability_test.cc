// The parts of the BPF signal that need neither root nor an installation.
#include "bpf/capability.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bpf/cgroup.h"

namespace usmc::bpf {
namespace {

class NoInstallation : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("USMC_BPF_PIN_DIR", "/nonexistent/usmc-bpf-test", 1);
    ForgetPeerMap();
  }
  void TearDown() override {
    unsetenv("USMC_BPF_PIN_DIR");
    ForgetPeerMap();
  }
};

TEST_F(NoInstallation, LookupIsUnknown) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  usmc_peer_info info{7, 7, 7, 7};
  EXPECT_EQ(LookupPeerCapability(sv[0], &info), PeerCapability::kUnknown);
  EXPECT_EQ(info.peer_ok, 7);  // untouched
  EXPECT_EQ(LookupPeerCapability(-1), PeerCapability::kUnknown);
  // The negative cache answers the following calls without a system call.
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(LookupPeerCapability(sv[1]), PeerCapability::kUnknown);
  }
  close(sv[0]);
  close(sv[1]);
}

TEST(PeerCapabilityName, Names) {
  EXPECT_STREQ(PeerCapabilityName(PeerCapability::kCapable), "capable");
  EXPECT_STREQ(PeerCapabilityName(PeerCapability::kNotCapable), "not_capable");
  EXPECT_STREQ(PeerCapabilityName(PeerCapability::kUnknown), "unknown");
}

TEST(Cgroup, SameOrBelow) {
  EXPECT_TRUE(IsSameOrBelow("/sys/fs/cgroup/usmc", "/sys/fs/cgroup/usmc"));
  EXPECT_TRUE(IsSameOrBelow("/sys/fs/cgroup/usmc/a", "/sys/fs/cgroup/usmc"));
  EXPECT_FALSE(IsSameOrBelow("/sys/fs/cgroup/usmc2", "/sys/fs/cgroup/usmc"));
  EXPECT_FALSE(IsSameOrBelow("/sys/fs/cgroup", "/sys/fs/cgroup/usmc"));
  EXPECT_FALSE(IsSameOrBelow("", "/sys/fs/cgroup/usmc"));
}

TEST(Cgroup, Resolve) {
  std::string err;
  EXPECT_EQ(ResolveCgroup("a/../../etc", &err), "");
  EXPECT_NE(err.find(".."), std::string::npos);
  const std::string mount = Cgroup2Mount();
  if (mount.empty()) GTEST_SKIP() << "no cgroup2 mount";
  EXPECT_EQ(ResolveCgroup("", &err), mount + "/usmc");
  EXPECT_EQ(ResolveCgroup("x/", &err), mount + "/x");
  EXPECT_EQ(ResolveCgroup(mount + "/y", &err), mount + "/y");
  EXPECT_EQ(ResolveCgroup("/proc/z", &err), "");
  EXPECT_FALSE(ProcessCgroup(getpid()).empty());
  EXPECT_TRUE(IsSameOrBelow(ProcessCgroup(getpid()), mount));
}

}  // namespace
}  // namespace usmc::bpf
