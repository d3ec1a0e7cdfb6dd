// The rule that decides when free heap is given back after a load drop (core/memory.hpp).
#include "core/memory.hpp"

#include <gtest/gtest.h>

using gost::memory::load_dropped;

TEST(Memory, LoadDropNeedsSixtyFourAndAQuarterOfThePeak) {
  EXPECT_FALSE(load_dropped(0, 0));
  EXPECT_FALSE(load_dropped(63, 0));  // fewer than 64 connections gone
  EXPECT_TRUE(load_dropped(64, 0));
  EXPECT_TRUE(load_dropped(1500, 0));     // a burst that ended
  EXPECT_FALSE(load_dropped(1000, 800));  // 200 gone: less than a quarter of a steady 1000
  EXPECT_TRUE(load_dropped(1000, 750));
  EXPECT_FALSE(load_dropped(100, 100));  // steady
}

TEST(Memory, ConnectionScopesCountAndAReleaseResetsThePeak) {
  {
    std::vector<std::unique_ptr<gost::memory::ConnectionScope>> open;
    for (int i = 0; i < 100; ++i) open.push_back(std::make_unique<gost::memory::ConnectionScope>());
  }
  EXPECT_TRUE(gost::memory::release_after_load_drop());   // 100 opened then closed
  EXPECT_FALSE(gost::memory::release_after_load_drop());  // the peak was reset to the load
}
